#[gort::main(timeout = 5)]
async fn main() {}
