#[gort::main]
fn main() {}
