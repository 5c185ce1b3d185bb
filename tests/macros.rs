//! `#[gort::main]` / `#[gort::test]` misuse is a compile error that points at the
//! mistake; correct uses compile and run.

#[test]
fn rt_macro_errors_point_at_the_mistake() {
    // The expected messages are the stable compiler's; the sanitizer step of
    // `.ci/run` builds with nightly, whose wording differs.
    if std::env::var_os("GORT_SANITIZER").is_some() {
        eprintln!("GORT_SANITIZER is set (a nightly build): compile-error messages not compared");
        return;
    }
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass_*.rs");
    t.compile_fail("tests/ui/fail_*.rs");
}
