//! Four replicas as four OS processes (the `pbft_replica` example) over real
//! TCP on 127.0.0.1: they commit the same blocks; with one backup killed
//! (SIGKILL) the other three go on.
//!
//! Each replica is this test binary run again with `--as-pbft-replica`,
//! which runs the example's code (included below), so the test needs no
//! build step of its own.

mod common;
#[allow(dead_code)] // its `main` is the example's, unused here
#[path = "../examples/pbft_replica.rs"]
mod pbft_replica;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{client, tx};

const REPLICAS: usize = 4;
const TIMEOUT: Duration = Duration::from_secs(30);

/// The first argument that makes this test binary a replica process.
const AS_REPLICA: &str = "--as-pbft-replica";

/// This binary, re-run as a replica: the same code as the `pbft_replica`
/// example, compiled into the test, so nothing is built while tests run.
fn replica_binary() -> PathBuf {
    std::env::current_exe().expect("the test binary's path")
}

/// A plain `main` (`harness = false` in Cargo.toml): either one replica
/// process, or the test, which starts four of them. A filter argument that
/// does not match the test's name skips it, and `--list` lists it, as with
/// libtest.
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(AS_REPLICA) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        if let Err(e) = runtime.block_on(pbft_replica::run(args.into_iter().skip(1))) {
            eprintln!("replica failed: {e:#}");
            std::process::exit(1);
        }
        return;
    }
    const NAME: &str = "four_processes_commit_and_survive_a_killed_backup";
    if args.iter().any(|a| a == "--list") {
        println!("{NAME}: test");
        return;
    }
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    if !filters.is_empty() && !filters.iter().any(|f| NAME.contains(f.as_str())) {
        println!("running 0 tests (filtered out: {NAME})");
        return;
    }
    println!("running 1 test");
    four_processes_commit_and_survive_a_killed_backup();
    println!("test {NAME} ... ok");
}

/// What a replica process printed, sorted by kind.
#[derive(Default)]
struct Seen {
    /// Committed transaction ids and their heights.
    committed: BTreeMap<String, u64>,
    failed: Vec<String>,
}

/// One replica process; killed when dropped, so a failing test leaves no
/// process behind (and a replica exits by itself when its stdin closes, should
/// this test process be killed).
struct Replica {
    child: Child,
    stdin: ChildStdin,
    /// `listening`, `ready` and `status` lines, in order.
    events: mpsc::Receiver<String>,
    seen: Arc<Mutex<Seen>>,
}

impl Replica {
    fn spawn(bin: &Path, id: usize, data: &Path) -> Self {
        let mut child = Command::new(bin)
            .arg(AS_REPLICA)
            .args(["--id", &id.to_string(), "--key-seed", "pbft_processes"])
            .arg("--data")
            .arg(data)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting a replica process");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (events_tx, events) = mpsc::channel();
        let seen = Arc::new(Mutex::new(Seen::default()));
        {
            let seen = seen.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { return };
                    let mut words = line.split_whitespace();
                    match words.next() {
                        Some("committed") => {
                            let (Some(id), Some(h)) = (words.next(), words.next()) else {
                                continue;
                            };
                            seen.lock()
                                .unwrap()
                                .committed
                                .insert(id.to_string(), h.parse().unwrap());
                        }
                        Some("failed") => seen.lock().unwrap().failed.push(line),
                        _ => {
                            if events_tx.send(line).is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
        Self {
            child,
            stdin,
            events,
            seen,
        }
    }

    fn send(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").expect("writing to a replica");
        self.stdin.flush().unwrap();
    }

    /// The next event line starting with `prefix` (the rest of it).
    fn expect(&self, prefix: &str) -> String {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .events
                .recv_timeout(left)
                .unwrap_or_else(|e| panic!("no `{prefix}` line from a replica: {e}"));
            if let Some(rest) = line.strip_prefix(prefix) {
                return rest.trim().to_string();
            }
        }
    }

    /// (height, block hash) as the replica reports it.
    fn status(&mut self) -> (u64, String) {
        self.send("status");
        let s = self.expect("status ");
        let (h, hash) = s.split_once(' ').expect("status <height> <hash>");
        (h.parse().unwrap(), hash.to_string())
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Submits nonces `range` of the test client, spread over `at`, and waits until
/// the replica each went to reports it committed. Returns the highest height.
fn submit(replicas: &mut [Replica], at: &[usize], range: std::ops::Range<u64>) -> u64 {
    let key = client(42);
    let mut wanted = Vec::new();
    for n in range {
        let t = tx(&key, n).into_inner();
        let r = at[n as usize % at.len()];
        replicas[r].send(&format!("submit {}", hex::encode(t.to_bytes())));
        wanted.push((r, t.id().to_string()));
    }
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let mut top = 0;
        let mut missing = 0;
        for (r, id) in &wanted {
            let seen = replicas[*r].seen.lock().unwrap();
            assert!(seen.failed.is_empty(), "{:?}", seen.failed);
            match seen.committed.get(id) {
                Some(h) => top = top.max(*h),
                None => missing += 1,
            }
        }
        if missing == 0 {
            return top;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} of {} calls not committed in {TIMEOUT:?}",
            wanted.len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until the replicas `of` report the same head at `at_least` or above.
fn converge(replicas: &mut [Replica], of: &[usize], at_least: u64) -> (u64, String) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let heads: Vec<_> = of.iter().map(|i| replicas[*i].status()).collect();
        if heads.windows(2).all(|w| w[0] == w[1]) && heads[0].0 >= at_least {
            return heads[0].clone();
        }
        assert!(Instant::now() < deadline, "no common head: {heads:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn four_processes_commit_and_survive_a_killed_backup() {
    let bin = replica_binary();
    let dir = tempfile::tempdir().unwrap();
    let mut replicas: Vec<Replica> = (0..REPLICAS)
        .map(|i| Replica::spawn(&bin, i, &dir.path().join(format!("replica-{i}"))))
        .collect();
    // Each binds a free port of its own and says which; then all learn all.
    let addrs: Vec<String> = replicas.iter().map(|r| r.expect("listening ")).collect();
    let peers = format!("peers {}", addrs.join(","));
    for r in &mut replicas {
        r.send(&peers);
    }
    for (i, r) in replicas.iter().enumerate() {
        assert_eq!(r.expect("ready "), i.to_string());
    }

    let top = submit(&mut replicas, &[0, 1, 2, 3], 0..40);
    let (h1, hash1) = converge(&mut replicas, &[0, 1, 2, 3], top);
    assert!(h1 >= 1);

    // Replica 3 (a backup in view 0) dies without a word.
    replicas[3].kill();
    let top = submit(&mut replicas, &[0, 1, 2], 40..80);
    let (h2, hash2) = converge(&mut replicas, &[0, 1, 2], top);
    eprintln!("heads: {h1} {hash1} with four processes, {h2} {hash2} with three");
    assert!(h2 > h1, "no progress without replica 3: {h1} -> {h2}");
    assert_ne!(hash1, hash2);

    // A clean stop: end of input.
    for r in replicas.iter_mut().take(3) {
        r.send("quit");
    }
    for r in replicas.iter_mut().take(3) {
        let status = r.child.wait().unwrap();
        assert!(status.success(), "a replica exited with {status}");
    }
}
