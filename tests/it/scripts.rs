//! The bench and evaluation scripts' own unit tests (hit rule, metrics), run with the machine's python3.

#[test]
fn script_unit_tests_pass() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = std::process::Command::new("python3")
        .args(["-m", "unittest", "discover", "-s", "scripts", "-p", "test_*.py"])
        .current_dir(root)
        .output()
        .expect("python3 runs");
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}
