//! Shared by the `cli_*` tests: the real `rr-node` and `rr` binaries, run as
//! a user would run them.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The passphrase the tests' keys are sealed with.
pub const PASSPHRASE: &str = "correct horse battery staple";

/// A running `rr-node dev` process.
pub struct NodeProcess {
    child: Option<Child>,
    /// Its base URL, from its `listening on` line.
    pub url: String,
    log: PathBuf,
}

impl NodeProcess {
    /// Starts `rr-node dev --data-dir DATA --listen 127.0.0.1:0` and waits for
    /// its `listening on` line.
    pub fn start(data_dir: &Path, log: &Path) -> Self {
        Self::start_with(data_dir, log, &[], &[])
    }

    /// Like [`NodeProcess::start`] with more flags and environment variables
    /// (no other `RR_NODE_*` variable reaches the node).
    pub fn start_with(data_dir: &Path, log: &Path, args: &[&str], envs: &[(&str, &str)]) -> Self {
        Self::spawn(data_dir, log, "127.0.0.1:0", args, envs)
    }

    /// Like [`NodeProcess::start`], listening on `listen` (such as the
    /// address of a node stopped before).
    pub fn start_on(data_dir: &Path, log: &Path, listen: &str) -> Self {
        Self::spawn(data_dir, log, listen, &[], &[])
    }

    fn spawn(
        data_dir: &Path,
        log: &Path,
        listen: &str,
        args: &[&str],
        envs: &[(&str, &str)],
    ) -> Self {
        let log_file = std::fs::File::create(log).expect("create the node's log file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_rr-node"));
        for (k, _) in std::env::vars() {
            if k.starts_with("RR_NODE_") {
                command.env_remove(k);
            }
        }
        let mut child = command
            .envs(envs.iter().copied())
            .arg("dev")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--listen", listen])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .expect("start rr-node");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        // Reads the first line, then keeps draining so the node never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if !sent {
                    if let Some(url) = line.strip_prefix("listening on ") {
                        let _ = tx.send(url.trim().to_string());
                        sent = true;
                    }
                }
            }
        });
        let url = match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "rr-node printed no `listening on` line; its log:\n{}",
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
        };
        Self {
            child: Some(child),
            url,
            log: log.to_path_buf(),
        }
    }

    /// Its `IP:PORT`.
    pub fn addr(&self) -> String {
        self.url
            .strip_prefix("http://")
            .expect("an http:// URL")
            .trim_end_matches('/')
            .to_string()
    }

    /// Kills it outright (SIGKILL), as a crash would.
    pub fn kill(mut self) {
        let mut child = self.child.take().expect("running");
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Sends SIGTERM and waits for a clean exit (status 0).
    pub fn stop(mut self) {
        let mut child = self.child.take().expect("running");
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().expect("wait for rr-node") {
                assert!(
                    status.success(),
                    "rr-node exited with {status} after SIGTERM; its log:\n{}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
                return;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("rr-node did not stop within 60 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs the real `rr` with a keystore, a node and a passphrase.
#[derive(Clone, Debug)]
pub struct Rr {
    /// Working directory (relative paths resolve here).
    pub cwd: PathBuf,
    /// `RR_KEYSTORE`.
    pub keystore: PathBuf,
    /// `RR_NODE`.
    pub node: String,
    /// `RR_PASSPHRASE`.
    pub passphrase: String,
}

/// What one `rr` run did.
#[derive(Debug)]
pub struct Run {
    /// Exit code.
    pub code: i32,
    /// Stdout.
    pub stdout: String,
    /// Stderr.
    pub stderr: String,
}

impl Run {
    /// Asserts success and returns stdout parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        self.ok();
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }

    /// Asserts success.
    pub fn ok(&self) -> &Self {
        assert_eq!(
            self.code, 0,
            "rr failed:\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }

    /// Asserts failure with exactly one `error: ...` line on stderr that
    /// contains each of `needles` (after any `note: ...` lines, such as the
    /// one saying a node's key was pinned); returns the line.
    pub fn fails_with(&self, needles: &[&str]) -> String {
        assert_ne!(self.code, 0, "rr succeeded:\nstdout: {}", self.stdout);
        let lines: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| !l.starts_with("note: first use of node"))
            .collect();
        assert_eq!(
            lines.len(),
            1,
            "expected one line on stderr, got:\n{}",
            self.stderr
        );
        let line = lines[0];
        assert!(line.starts_with("error: "), "{line}");
        for needle in needles {
            assert!(line.contains(needle), "{needle:?} not in: {line}");
        }
        assert!(
            self.stdout.is_empty(),
            "a failure printed on stdout: {}",
            self.stdout
        );
        line.to_string()
    }
}

impl Rr {
    /// An `rr` for `node` with a keystore in `dir/keys`, run in `dir`.
    pub fn new(dir: &Path, node: &str) -> Self {
        Self {
            cwd: dir.to_path_buf(),
            keystore: dir.join("keys"),
            node: node.to_string(),
            passphrase: PASSPHRASE.to_string(),
        }
    }

    /// The same with another passphrase.
    pub fn with_passphrase(&self, passphrase: &str) -> Self {
        Self {
            passphrase: passphrase.to_string(),
            ..self.clone()
        }
    }

    /// The key `rr` pinned for `url` in the keystore's known_nodes.json.
    pub fn pinned_key(&self, url: &str) -> String {
        let known: serde_json::Value = serde_json::from_slice(
            &std::fs::read(self.keystore.join("known_nodes.json")).expect("known_nodes.json"),
        )
        .expect("known_nodes.json is JSON");
        known[url.trim_end_matches('/')]["key"]
            .as_str()
            .unwrap_or_else(|| panic!("no key pinned for {url}: {known}"))
            .to_string()
    }

    /// Runs `rr ARGS`.
    pub fn run(&self, args: &[&str]) -> Run {
        let out: Output = Command::new(env!("CARGO_BIN_EXE_rr"))
            .args(args)
            .current_dir(&self.cwd)
            .env("RR_NODE", &self.node)
            .env("RR_KEYSTORE", &self.keystore)
            .env("RR_PASSPHRASE", &self.passphrase)
            .env_remove("RR_AS")
            .stdin(Stdio::null())
            .output()
            .expect("run rr");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// Deterministic pseudo-random bytes.
pub fn sample(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Files under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

/// Names of the entries of `dir`, sorted.
pub fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// `rr-node localnet`, stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Localnet {
    child: Child,
    /// Its `--data-dir`: cluster.json and `replica-N/`.
    pub dir: PathBuf,
}

impl Localnet {
    /// Starts `rr-node localnet --replicas 4 --base-port 0 --data-dir DIR`
    /// and waits for its `cluster ready` line.
    pub fn start(dir: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rr-node"))
            .args([
                "localnet",
                "--replicas",
                "4",
                "--base-port",
                "0",
                "--log",
                "info",
            ])
            .arg("--data-dir")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start rr-node localnet");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.starts_with("cluster ready") => break,
                Ok(_) => {}
                Err(_) => {
                    let _ = child.kill();
                    panic!("localnet did not get ready in 120 s");
                }
            }
        }
        Self {
            child,
            dir: dir.to_path_buf(),
        }
    }

    /// Its cluster.json.
    pub fn cluster(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(self.dir.join("cluster.json")).unwrap()).unwrap()
    }

    /// The pid of replica `replica`.
    pub fn pid(&self, replica: usize) -> i32 {
        self.cluster()["replicas"][replica]["pid"].as_i64().unwrap() as i32
    }

    /// Ctrl-C (SIGTERM): stops every replica; returns localnet's exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        signal(self.child.id() as i32, "TERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "localnet did not stop");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Localnet {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            signal(self.child.id() as i32, "TERM");
            std::thread::sleep(Duration::from_secs(2));
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Sends signal `name` (`TERM`, `KILL`, …) to `pid`.
pub fn signal(pid: i32, name: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status();
}
