//! `DriverPark`: how a worker sleeps when the reactor is installed.
//!
//! A sleeping worker either holds the driver (blocked in `epoll_wait`) or waits on its
//! own condition variable. Its state word says which, so `unpark` knows whether to
//! write the driver's eventfd or signal the condition variable, and a wake-up that
//! arrives before the sleep is remembered (`NOTIFIED`).

#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use gort_executor::park::{Park, Unpark};

use super::{lock, Driver};

const EMPTY: usize = 0;
const PARKED_CONDVAR: usize = 1;
const PARKED_DRIVER: usize = 2;
const NOTIFIED: usize = 3;

pub(crate) struct ParkState {
    state: AtomicUsize,
    mutex: Mutex<()>,
    condvar: Condvar,
    driver: Arc<Driver>,
}

/// One worker's parker over the shared driver.
pub(crate) struct DriverPark {
    me: Arc<ParkState>,
}

impl DriverPark {
    pub(crate) fn new(driver: Arc<Driver>) -> DriverPark {
        DriverPark {
            me: Arc::new(ParkState {
                state: AtomicUsize::new(EMPTY),
                mutex: Mutex::new(()),
                condvar: Condvar::new(),
                driver,
            }),
        }
    }
}

impl Park for DriverPark {
    fn park(&mut self, timeout: Option<Duration>) {
        let me = &self.me;
        let driver = &me.driver;
        if let Some(mut holder) = driver.try_hold() {
            // Consume a pending wake-up: then only look, don't wait.
            let notified = me
                .state
                .compare_exchange(NOTIFIED, EMPTY, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok();
            let timeout = if notified {
                Some(Duration::ZERO)
            } else {
                timeout
            };
            if !notified
                && me
                    .state
                    .compare_exchange(EMPTY, PARKED_DRIVER, Ordering::SeqCst, Ordering::SeqCst)
                    .is_err()
            {
                // Notified between the two steps.
                me.state.store(EMPTY, Ordering::SeqCst);
                driver.turn(&mut holder, Some(Duration::ZERO));
            } else {
                driver.turn(&mut holder, timeout);
                me.state.store(EMPTY, Ordering::SeqCst);
            }
            drop(holder);
            // We leave the driver to go and run tasks: hand it to a sleeper so sockets
            // and timers stay watched — also after a zero-timeout look, during which a
            // worker may have found the driver taken and gone to sleep on its
            // condition variable (the sleeper list is empty in the common case).
            driver.hand_to_sleeper();
            return;
        }
        // Someone else watches the driver: sleep on our condition variable.
        if me
            .state
            .compare_exchange(NOTIFIED, EMPTY, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
            || timeout == Some(Duration::ZERO)
        {
            driver.flush();
            driver.fire_timers();
            return;
        }
        // What this worker queued must reach the kernel before it sleeps.
        driver.flush();
        let mut guard = lock(&me.mutex);
        match me
            .state
            .compare_exchange(EMPTY, PARKED_CONDVAR, Ordering::SeqCst, Ordering::SeqCst)
        {
            Ok(_) => {}
            Err(_) => {
                me.state.store(EMPTY, Ordering::SeqCst);
                return;
            }
        }
        lock(&driver.sleepers).push(me.clone());
        // Re-check: the holder may have left the driver before we queued ourselves.
        if driver.try_hold().is_some() {
            me.state.store(EMPTY, Ordering::SeqCst);
            remove_sleeper(driver, me);
            return;
        }
        match timeout {
            None => {
                while me.state.load(Ordering::SeqCst) == PARKED_CONDVAR {
                    guard = me.condvar.wait(guard).unwrap_or_else(|e| e.into_inner());
                }
            }
            Some(d) => {
                let (_g, _) = me
                    .condvar
                    .wait_timeout_while(guard, d, |_| {
                        me.state.load(Ordering::SeqCst) == PARKED_CONDVAR
                    })
                    .unwrap_or_else(|e| e.into_inner());
            }
        }
        me.state.store(EMPTY, Ordering::SeqCst);
        remove_sleeper(driver, me);
    }

    fn unparker(&self) -> Arc<dyn Unpark> {
        self.me.clone()
    }
}

fn remove_sleeper(driver: &Driver, me: &Arc<ParkState>) {
    let mut sleepers = lock(&driver.sleepers);
    if let Some(pos) = sleepers.iter().position(|s| Arc::ptr_eq(s, me)) {
        sleepers.swap_remove(pos);
    }
}

impl Unpark for ParkState {
    fn unpark(&self) {
        match self.state.swap(NOTIFIED, Ordering::SeqCst) {
            PARKED_CONDVAR => {
                drop(lock(&self.mutex));
                self.condvar.notify_one();
            }
            PARKED_DRIVER => self.driver.wake(),
            _ => {} // awake: the token is left for the next park
        }
    }
}
