//! The `rr-node` binary: settings precedence (file, then environment, then
//! flags), clear one-line errors for bad settings, clean shutdown on SIGTERM.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn rr_node() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rr-node"));
    for (k, _) in std::env::vars() {
        if k.starts_with("RR_NODE_") {
            c.env_remove(k);
        }
    }
    c
}

/// Starts the node, waits for its `listening on` line, stops it with SIGTERM
/// and returns whether it exited 0.
fn start_and_stop(mut cmd: Command) -> bool {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = lines.next().expect("a line").unwrap();
    assert!(line.starts_with("listening on http://127.0.0.1:"), "{line}");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s.success();
        }
        assert!(Instant::now() < deadline, "rr-node did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn fails_with(mut cmd: Command, needle: &str) {
    let out = cmd.output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "one line expected: {err}");
    assert!(err.contains(needle), "{needle:?} not in {err}");
}

fn has_ledger(dir: &Path) -> bool {
    dir.join("ledger.redb").is_file()
}

#[test]
fn settings_come_from_file_then_environment_then_flags() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("c"),
    );
    let file = tmp.path().join("node.toml");
    std::fs::write(
        &file,
        format!(
            "data_dir = {:?}\nlisten = \"127.0.0.1:0\"\nlog = \"warn\"\n",
            a
        ),
    )
    .unwrap();

    // The file alone.
    let mut cmd = rr_node();
    cmd.args(["dev", "--config"]).arg(&file);
    assert!(start_and_stop(cmd));
    assert!(has_ledger(&a));

    // The environment beats the file.
    let mut cmd = rr_node();
    cmd.args(["dev", "--config"])
        .arg(&file)
        .env("RR_NODE_DATA_DIR", &b);
    assert!(start_and_stop(cmd));
    assert!(has_ledger(&b));

    // A flag beats both.
    let mut cmd = rr_node();
    cmd.args(["dev", "--config"])
        .arg(&file)
        .env("RR_NODE_DATA_DIR", &b)
        .arg("--data-dir")
        .arg(&c);
    assert!(start_and_stop(cmd));
    assert!(has_ledger(&c));
}

#[test]
fn bad_settings_get_one_clear_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("d");

    let mut cmd = rr_node();
    cmd.args(["dev", "--listen", "127.0.0.1:0"]);
    fails_with(cmd, "--data-dir");

    let mut cmd = rr_node();
    cmd.args(["dev", "--listen", "localhost-ish"])
        .arg("--data-dir")
        .arg(&dir);
    fails_with(cmd, "is not IP:PORT");

    let mut cmd = rr_node();
    cmd.args(["dev", "--listen", "127.0.0.1:0", "--log", "rr_node=loud"])
        .arg("--data-dir")
        .arg(&dir);
    fails_with(cmd, "log filter");

    let mut cmd = rr_node();
    cmd.args(["dev", "--listen", "127.0.0.1:0", "--max-blob-size", "0"])
        .arg("--data-dir")
        .arg(&dir);
    fails_with(cmd, "max_blob_size");

    // Upload limits: a flag beats the environment, and zero is refused.
    let mut cmd = rr_node();
    cmd.args([
        "dev",
        "--listen",
        "127.0.0.1:0",
        "--upload-quota-bytes",
        "0",
    ])
    .env("RR_NODE_UPLOAD_QUOTA_BYTES", "1000")
    .arg("--data-dir")
    .arg(&dir);
    fails_with(cmd, "upload_quota_bytes");
    let mut cmd = rr_node();
    cmd.args(["dev", "--listen", "127.0.0.1:0"])
        .args(["--unreferenced-grace-secs", "0"])
        .arg("--data-dir")
        .arg(&dir);
    fails_with(cmd, "unreferenced_grace_secs");

    let file = tmp.path().join("typo.toml");
    std::fs::write(&file, "data_dirr = \"/tmp/x\"\n").unwrap();
    let mut cmd = rr_node();
    cmd.args(["dev", "--config"]).arg(&file);
    fails_with(cmd, "data_dirr");

    let mut cmd = rr_node();
    cmd.args(["dev", "--config"])
        .arg(tmp.path().join("missing.toml"));
    fails_with(cmd, "does not exist");

    // A data directory that is a file.
    let not_dir = tmp.path().join("file");
    std::fs::write(&not_dir, b"x").unwrap();
    let mut cmd = rr_node();
    cmd.args(["dev", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&not_dir);
    fails_with(cmd, "data directory");
    // None of the failures created the data directory.
    assert!(!dir.exists());
}
