//! `#[gort::main]` and `#[gort::test]`: run an `async fn` on a gort runtime.
//!
//! ```ignore
//! #[gort::main]                 // workers: GORT_WORKERS, else the available cores
//! async fn main() { .. }
//!
//! #[gort::main(workers = 2)]    // a fixed number of workers
//! async fn main() -> std::io::Result<()> { .. }
//!
//! #[gort::test]
//! async fn it_works() { .. }
//!
//! #[gort::test(workers = 2, timeout = 20)]   // aborts the test binary if still running after 20 s
//! async fn it_does_not_hang() { .. }
//! ```
//!
//! Arguments, in any order, separated by commas:
//!
//! - `workers = N` (a positive integer): the runtime's worker threads.
//! - `timeout = SECS` (`#[gort::test]` only): whole seconds, or a string with its unit,
//!   `timeout = "500ms"` or `timeout = "20s"`. A test still running after that long
//!   writes ``test `NAME` did not finish within 20 s: aborting (a hang is a bug)`` to the
//!   stderr descriptor (past the harness's capture) and aborts the process, so that a
//!   hang fails loudly instead of hanging CI. The time covers starting the runtime, the
//!   body and the runtime's shutdown. A finished (or panicked) test disarms it at once:
//!   it costs a thread that sleeps until then, no polling and no delay.
//! - `crate = "path"`: where the gort facade is, for crates that re-export it.
//!
//! Anything else, a bad value, a non-`async` function, or a `main` with parameters is a
//! compile error pointing at the mistake.

#![forbid(unsafe_code)]

mod select;

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{quote, quote_spanned};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, Ident, ItemFn, Lit, MetaNameValue, ReturnType, Token};

/// Runs `async fn main` on a new gort runtime. See the crate docs for the arguments.
#[proc_macro_attribute]
pub fn main(args: TokenStream, item: TokenStream) -> TokenStream {
    expand(args.into(), item.into(), Kind::Main).into()
}

/// Runs an `async fn` test on a new gort runtime: `#[gort::test]`,
/// `#[gort::test(workers = 2)]`, `#[gort::test(timeout = 20)]` (abort the process,
/// naming the test, if it has not finished in 20 s), or both. See the crate docs for the
/// arguments.
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    expand(args.into(), item.into(), Kind::Test).into()
}

/// Waits on several channel operations and futures at once and runs the branch that
/// completes first: Go's `select`.
///
/// ```ignore
/// loop {
///     gort::select! {
///         v = rx.recv() => match v {            // Option<T>: None once closed and drained
///             Some(v) => println!("got {v}"),
///             None => break,
///         },
///         res = tx.send(42) => res.unwrap(),    // Result<(), SendError<T>>
///         _ = some_future => println!("any future works too"),
///     }
/// }
///
/// // Non-blocking, with `default` (Go's `select { ... default: }`):
/// gort::select! {
///     Some(v) = rx.recv() => println!("{v}"),
///     default => println!("nothing ready"),
/// }
/// ```
///
/// Each branch is `pattern = expression => body`. The expression is evaluated once,
/// before waiting. Channel operations (`rx.recv()`, `tx.send(v)`) take part in Go's
/// select exactly: among the branches that are ready at once one is chosen uniformly at
/// random, and a branch that loses consumes nothing and sends nothing. Any other future
/// is polled alongside; when it wins, the channel branches are untouched.
///
/// A refutable pattern disables its branch when the result does not match (for
/// example `Some(v) = rx.recv()` stops listening once the channel is closed) and the
/// select goes on with the others. `default => body` runs when no branch is ready
/// right now, without waiting. With no `default`, a select whose branches are all
/// disabled panics.
///
/// Must be used inside an `async` context. Cancel safe: dropping the select at an
/// `.await` leaves every channel as if it had never been polled (a value already handed
/// to a receiving branch goes back to the channel).
#[proc_macro]
pub fn select(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as select::SelectInput);
    select::expand(input, quote!(::gort)).into()
}

#[derive(Copy, Clone, PartialEq, Eq)]
enum Kind {
    Main,
    Test,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Main => "gort::main",
            Kind::Test => "gort::test",
        }
    }
}

struct Config {
    workers: Option<usize>,
    /// `#[gort::test(timeout = ..)]`, in milliseconds.
    timeout_ms: Option<u64>,
    krate: syn::Path,
}

fn expand(args: TokenStream2, item: TokenStream2, kind: Kind) -> TokenStream2 {
    // On a parse error, keep the user's tokens so the IDE still sees the function, and
    // add the error.
    let input: ItemFn = match syn::parse2(item.clone()) {
        Ok(f) => f,
        Err(e) => {
            let err = e.to_compile_error();
            return quote! { #item #err };
        }
    };
    match parse_config(args, kind).and_then(|config| build(input.clone(), config, kind)) {
        Ok(tokens) => tokens,
        Err(e) => {
            // Keep a plain (non-async) stand-in so the only error is ours: an `async fn
            // main` left in place would add "main cannot be async".
            let err = e.to_compile_error();
            let mut stand_in = input;
            stand_in.sig.asyncness = None;
            *stand_in.block = syn::parse_quote!({ ::core::unimplemented!() });
            quote! { #stand_in #err }
        }
    }
}

fn parse_config(args: TokenStream2, kind: Kind) -> syn::Result<Config> {
    let mut config = Config {
        workers: None,
        timeout_ms: None,
        krate: syn::parse_quote!(::gort),
    };
    let args = Punctuated::<MetaNameValue, Token![,]>::parse_terminated.parse2(args)?;
    for arg in args {
        let key = arg
            .path
            .get_ident()
            .map(|i| i.to_string())
            .unwrap_or_default();
        match key.as_str() {
            "workers" => {
                let n = int_value(&arg.value, "workers")?;
                if n == 0 {
                    return Err(syn::Error::new(
                        arg.value.span(),
                        "`workers` must be at least 1",
                    ));
                }
                config.workers = Some(n);
            }
            "timeout" if kind == Kind::Test => {
                config.timeout_ms = Some(timeout_value(&arg.value)?);
            }
            "timeout" => {
                return Err(syn::Error::new(
                    arg.path.span(),
                    "`timeout` is for #[gort::test]; #[gort::main] runs as long as it takes",
                ));
            }
            "crate" => {
                let Expr::Lit(ExprLit {
                    lit: Lit::Str(s), ..
                }) = &arg.value
                else {
                    return Err(syn::Error::new(
                        arg.value.span(),
                        "`crate` takes a string: crate = \"path::to::gort\"",
                    ));
                };
                config.krate = s.parse()?;
            }
            _ => {
                let expected = match kind {
                    Kind::Main => "`workers = N` or `crate = \"path\"`",
                    Kind::Test => "`workers = N`, `timeout = SECS` or `crate = \"path\"`",
                };
                return Err(syn::Error::new(
                    arg.path.span(),
                    format!(
                        "unknown argument `{}` for #[{}]; expected {expected}",
                        quote!(#arg)
                            .to_string()
                            .split('=')
                            .next()
                            .unwrap_or("")
                            .trim(),
                        kind.name()
                    ),
                ));
            }
        }
    }
    Ok(config)
}

fn int_value(value: &Expr, name: &str) -> syn::Result<usize> {
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Int(i), ..
        }) => i.base10_parse::<usize>(),
        other => Err(syn::Error::new(
            other.span(),
            format!("`{name}` takes a positive integer, like `{name} = 2`"),
        )),
    }
}

/// `timeout = 20` (whole seconds) or `timeout = "500ms"` / `"20s"` (a string with its
/// unit), in milliseconds; at least 1 ms.
fn timeout_value(value: &Expr) -> syn::Result<u64> {
    const USAGE: &str =
        "`timeout` takes whole seconds or a string with its unit: `timeout = 20` or `timeout = \"500ms\"`";
    let (ms, span) = match value {
        Expr::Lit(ExprLit {
            lit: Lit::Int(i), ..
        }) => {
            // `timeout = 500ms` lexes as 500 with the suffix `ms`: refuse every suffix
            // rather than read it as 500 seconds.
            if !i.suffix().is_empty() {
                return Err(syn::Error::new(
                    i.span(),
                    format!(
                        "`timeout = N` counts whole seconds; write a unit in a string: `timeout = \"{}{}\"`",
                        i.base10_digits(),
                        i.suffix()
                    ),
                ));
            }
            // An integer literal that is not a `u64` is too large.
            let secs = i.base10_parse::<u64>().ok();
            (secs.and_then(|s| s.checked_mul(1000)), i.span())
        }
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => {
            let text = s.value();
            let text = text.trim();
            let digits = text
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(text.len());
            let (number, unit) = text.split_at(digits);
            let scale = match unit.trim() {
                "ms" => 1,
                "s" => 1000,
                _ => {
                    return Err(syn::Error::new(
                        s.span(),
                        "a `timeout` string is a whole number of `ms` or `s`, like \"500ms\" or \"20s\"",
                    ))
                }
            };
            let n = number
                .parse::<u64>()
                .map_err(|_| syn::Error::new(s.span(), USAGE))?;
            (n.checked_mul(scale), s.span())
        }
        other => return Err(syn::Error::new(other.span(), USAGE)),
    };
    match ms {
        Some(0) => Err(syn::Error::new(span, "`timeout` must be more than zero")),
        Some(ms) => Ok(ms),
        None => Err(syn::Error::new(span, "`timeout` is too large")),
    }
}

fn build(input: ItemFn, config: Config, kind: Kind) -> syn::Result<TokenStream2> {
    let sig = &input.sig;
    if sig.asyncness.is_none() {
        return Err(syn::Error::new(
            sig.fn_token.span(),
            format!(
                "the `async` keyword is missing from the function declaration: #[{}] runs an `async fn`",
                kind.name()
            ),
        ));
    }
    if !sig.inputs.is_empty() {
        let what = match kind {
            Kind::Main => "`main` cannot take arguments",
            Kind::Test => "a test function cannot take arguments",
        };
        return Err(syn::Error::new(sig.inputs.span(), what));
    }
    if !sig.generics.params.is_empty() {
        return Err(syn::Error::new(
            sig.generics.span(),
            format!("#[{}] cannot be used on a generic function", kind.name()),
        ));
    }
    if kind == Kind::Main && sig.ident != "main" {
        return Err(syn::Error::new(
            sig.ident.span(),
            "#[gort::main] belongs on `async fn main`; use #[gort::test] for tests",
        ));
    }
    if kind == Kind::Test {
        if let Some(attr) = input.attrs.iter().find(|a| a.path().is_ident("test")) {
            return Err(syn::Error::new(
                attr.span(),
                "#[gort::test] already adds #[test]; remove this one",
            ));
        }
    }

    let krate = &config.krate;
    let attrs = &input.attrs;
    let vis = &input.vis;
    let ident = &sig.ident;
    let body = &input.block;
    let output = &sig.output;
    let output_ty = match output {
        ReturnType::Default => quote!(()),
        ReturnType::Type(_, ty) => quote!(#ty),
    };
    let workers = match config.workers {
        Some(n) => quote!(::core::option::Option::Some(#n)),
        None => quote!(::core::option::Option::None),
    };
    let start = match kind {
        Kind::Main => quote!(#krate::__private::runtime_for_main(#workers)),
        Kind::Test => quote!(#krate::__private::runtime_for_test(#workers)),
    };
    let test_attr = match kind {
        Kind::Main => quote!(),
        Kind::Test => quote!(#[::core::prelude::v1::test]),
    };
    // The pinned `dyn Future` with a named output type guides inference for `?` inside
    // the body (plain `async` blocks cannot name their error type).
    let span = body.span().resolved_at(Span::call_site());
    let run = quote_spanned! {span=>
        let body = ::core::pin::pin!(async move #body);
        let body: ::core::pin::Pin<&mut dyn ::core::future::Future<Output = #output_ty>> = body;
        #start.block_on(body)
    };
    // The watchdog is armed before the runtime starts and disarmed after it has shut
    // down, so a hang in either counts too; `drop` while a panic unwinds disarms it.
    let run = match config.timeout_ms {
        None => run,
        Some(ms) => {
            let guard = Ident::new("__gort_timeout", Span::mixed_site());
            let output = Ident::new("__gort_output", Span::mixed_site());
            quote! {
                let #guard = #krate::__private::TestTimeout::arm(
                    ::core::module_path!(),
                    ::core::stringify!(#ident),
                    ::core::time::Duration::from_millis(#ms),
                );
                let #output = { #run };
                ::core::mem::drop(#guard);
                #output
            }
        }
    };
    Ok(quote! {
        #test_attr
        #(#attrs)*
        #vis fn #ident() #output {
            #run
        }
    })
}
