//! The `switch` command line: `--help` documents every flag and command; `check-config`
//! accepts the shipped configuration and explains a broken one with file and key (exit 2).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;

fn switch() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_switch"));
    // Run from the repository root, as the README does.
    c.current_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."));
    c.env_remove("SWITCH_CONFIG");
    c
}

#[test]
fn help_documents_every_flag_and_command() {
    let out = switch().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "--config",
        "check-config",
        "run",
        "--help",
        "--version",
        "RUST_LOG",
        "SIGTERM",
    ] {
        assert!(text.contains(needle), "--help lacks {needle}:\n{text}");
    }
    let out = switch().args(["check-config", "--help"]).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8(out.stdout).unwrap().contains("--config"));
}

#[test]
fn check_config_accepts_the_shipped_configuration() {
    let out = switch().arg("check-config").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("configuration OK"), "{err}");
    let out = switch()
        .args(["check-config", "--config", "config/switch.toml"])
        .output()
        .unwrap();
    assert!(out.status.success());
}

#[test]
fn check_config_explains_a_broken_file_with_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let shipped = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config/switch.toml"),
    )
    .unwrap();
    let broken = shipped.replace("[node]\n", "[node]\ncolour = \"blue\"\n");
    let path = dir.path().join("broken.toml");
    std::fs::write(&path, broken).unwrap();
    let out = switch()
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("broken.toml"), "{err}");
    assert!(err.contains("node.colour"), "{err}");
    // Running on it refuses too, with the same explanation.
    let out = switch().arg("--config").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("node.colour"));
}
