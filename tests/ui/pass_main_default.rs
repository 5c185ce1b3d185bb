#[gort::main]
async fn main() {
    gort::task::yield_now().await;
}
