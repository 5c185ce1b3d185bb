#[gort::test(timeout = 0)]
async fn zero() {}

#[gort::test(workers = 2, timeout = 500ms)]
async fn unit_outside_a_string() {}

#[gort::test(timeout = "fast")]
async fn not_a_duration() {}

#[gort::test(timeout = 1.5)]
async fn not_whole_seconds() {}

#[gort::test(timeout = "0ms", workers = 1)]
async fn zero_ms() {}

#[gort::test(timeout = 99999999999999999999)]
async fn too_large() {}

#[gort::test(timeut = 5)]
async fn misspelt() {}

fn main() {}
