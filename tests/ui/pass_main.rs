#[gort::main(workers = 2)]
async fn main() -> Result<(), std::io::Error> {
    let v = gort::spawn(async { 1 }).await?;
    assert_eq!(v, 1);
    assert_eq!(gort::Handle::current().metrics().num_workers(), 2);
    Ok(())
}
