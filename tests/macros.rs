//! `#[gort::main]` / `#[gort::test]` misuse is a compile error that points at the
//! mistake; correct uses compile and run.

#[test]
fn rt_macro_errors_point_at_the_mistake() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass_*.rs");
    t.compile_fail("tests/ui/fail_*.rs");
}
