#[gort::main(workers = "two")]
async fn main() {}
