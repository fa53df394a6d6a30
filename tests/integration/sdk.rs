//! BlueKing's official Python SDKs (`bkapi-component-open`, `bkapi-client-core`) and
//! bk-sops' classic client calls against `baton emulator`: tests/sdk/test_sdks.py, run
//! with the Python named by `BATON_SDK_PYTHON` (a venv with those packages; `.ci/run`
//! makes one). Without that variable the test says so and checks nothing, since the
//! SDKs come from PyPI and a plain `cargo test` must not need the network.

use std::process::Command;

use crate::support::BATON;

#[test]
fn official_sdks_drive_the_emulator() {
    let Some(python) = std::env::var_os("BATON_SDK_PYTHON") else {
        eprintln!("BATON_SDK_PYTHON is not set: the SDK test (tests/sdk/) did not run");
        return;
    };
    let output = Command::new(python)
        .args(["-m", "unittest", "-v", "tests/sdk/test_sdks.py"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("BATON_BIN", BATON)
        .output()
        .expect("the SDK venv's python runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "SDK test failed:\n{}\n{stderr}",
        String::from_utf8_lossy(&output.stdout)
    );
    // unittest reports on stderr; every test of the file ran and passed.
    assert!(
        stderr.contains("Ran 8 tests") && stderr.trim_end().ends_with("OK"),
        "{stderr}"
    );
}
