//! Replays every fuzz target's corpus (`corpus/<target>/`) and its
//! regressions (`regressions/<target>/`, the crashes fuzzing found) on
//! stable Rust, without libFuzzer: each file goes to `rr_fuzz::<target>`,
//! which panics on a bug. This is what `cargo test --workspace` runs.
//!
//! A crash whose bug is not fixed yet is listed in [`KNOWN_BUGS`]: the
//! replay of its target skips it, and an `#[ignore]`d test of its own
//! replays it (`cargo test -p rr-fuzz --test replay -- --ignored`), in a
//! child process (a stack overflow aborts the process it happens in), on a
//! 2 MiB stack: that of the tokio worker and blocking threads the PBFT
//! engine decodes and verifies messages on. The test fails while the bug is
//! there. When it passes, remove the entry and the test: the file then
//! replays with the rest.

use std::path::{Path, PathBuf};

/// Crashes in `regressions/` of bugs not fixed yet: target, file, bug.
const KNOWN_BUGS: &[(&str, &str, &str)] = &[];

/// Inputs run on a thread with this much stack: corpus files may nest as
/// deep as the fuzzer's 8 MiB main thread allowed, and this build is not
/// optimized (bigger frames).
const STACK: usize = 256 << 20;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.is_file())
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    out.sort();
    out
}

fn known_bug(target: &str, path: &Path) -> bool {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    KNOWN_BUGS
        .iter()
        .any(|(t, f, _)| *t == target && name.as_deref() == Some(f))
}

// Used while KNOWN_BUGS lists a crash (none today).
#[allow(dead_code)]
/// The stack of the threads a replica decodes messages on (tokio's
/// default for its worker and blocking threads).
const ENGINE_STACK: usize = 2 << 20;

/// Runs `f` on `path`'s bytes on a thread of its own; the panic message if
/// it panicked.
fn run(f: fn(&[u8]), path: &Path) -> Result<(), String> {
    run_with_stack(f, path, STACK)
}

fn run_with_stack(f: fn(&[u8]), path: &Path, stack: usize) -> Result<(), String> {
    let data = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    std::thread::Builder::new()
        .stack_size(stack)
        .spawn(move || f(&data))
        .expect("a thread")
        .join()
        .map_err(|e| {
            e.downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "a panic".into())
        })
}

fn replay(target: &str, f: fn(&[u8])) {
    let corpus = files(&root().join("corpus").join(target));
    assert!(
        !corpus.is_empty(),
        "corpus/{target} is empty: run `cargo run -p rr-fuzz --example gen_corpus`"
    );
    let regressions = files(&root().join("regressions").join(target));
    let mut failures = Vec::new();
    let mut ran = 0;
    for path in corpus.iter().chain(&regressions) {
        if known_bug(target, path) {
            continue;
        }
        ran += 1;
        if let Err(e) = run(f, path) {
            failures.push(format!("{}: {e}", path.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "{target}: {} of {ran} inputs fail:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// Used while KNOWN_BUGS lists a crash (none today).
#[allow(dead_code)]
/// Set in the child process [`replay_known`] runs a known crash in.
const CHILD: &str = "RR_FUZZ_REPLAY_CHILD";

// Used while KNOWN_BUGS lists a crash (none today).
#[allow(dead_code)]
/// Replays one known crash (the `#[ignore]`d test `test`) in a child
/// process: fails until its bug is fixed.
fn replay_known(test: &str, target: &str, file: &str, f: fn(&[u8])) {
    let (_, _, bug) = KNOWN_BUGS
        .iter()
        .find(|(t, n, _)| *t == target && *n == file)
        .expect("listed in KNOWN_BUGS");
    let path = root().join("regressions").join(target).join(file);
    if std::env::var_os(CHILD).is_some() {
        if let Err(e) = run_with_stack(f, &path, ENGINE_STACK) {
            panic!("{e}");
        }
        return;
    }
    let log = std::env::temp_dir().join(format!("rr-fuzz-{test}-{}.log", std::process::id()));
    let file = std::fs::File::create(&log).expect("a log file");
    let mut child = std::process::Command::new(std::env::current_exe().expect("the test binary"))
        .args([
            test,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .stdout(file.try_clone().expect("a log file"))
        .stderr(file)
        .spawn()
        .expect("the test binary runs");
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for the child") {
            break status.to_string();
        }
        if started.elapsed() > KNOWN_BUG_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break format!("still running after {KNOWN_BUG_TIMEOUT:?}, killed");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let output = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    if !status.ends_with("exit status: 0") {
        let tail: Vec<&str> = output.lines().rev().take(12).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        panic!(
            "{}\nstill fails ({status}): {bug}\n{}",
            path.display(),
            tail.join("\n")
        );
    }
}

// Used while KNOWN_BUGS lists a crash (none today).
#[allow(dead_code)]
/// How long a known crash may run before it counts as a hang.
const KNOWN_BUG_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

macro_rules! replay_tests {
    ($($target:ident),* $(,)?) => {
        $(
            #[test]
            fn $target() {
                replay(stringify!($target), rr_fuzz::$target);
            }
        )*

        const REPLAYED: &[&str] = &[$(stringify!($target)),*];
    };
}

replay_tests!(
    transaction,
    call,
    block,
    ledger_values,
    certificate,
    state_answer,
    certified_receipt,
    signed_fragment,
    canonical_encoding,
    replica_message,
    handshake,
    umbral_public_key,
    umbral_capsule,
    umbral_key_frag,
    umbral_capsule_frag,
    recrypt_public_key,
    recrypt_capsule,
    recrypt_key_frag,
    recrypt_capsule_frag,
    envelope,
    sealed_fragment,
    keystore_key_file,
    cluster_file,
    public_card,
    receipt_file,
    http_messages,
);

#[test]
fn every_target_is_replayed_and_has_a_fuzz_target() {
    let names: Vec<&str> = rr_fuzz::TARGETS.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, REPLAYED, "TARGETS and the replay tests differ");
    let dir = root().join("fuzz").join("fuzz_targets");
    let mut on_disk: Vec<String> = files(&dir)
        .iter()
        .filter_map(|p| Some(p.file_stem()?.to_string_lossy().into_owned()))
        .collect();
    on_disk.sort();
    let mut want: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    want.sort();
    assert_eq!(on_disk, want, "fuzz/fuzz_targets/ and TARGETS differ");
    for name in &names {
        let src = std::fs::read_to_string(dir.join(format!("{name}.rs"))).expect("a target");
        assert!(
            src.contains(&format!("rr_fuzz::{name}(data)")),
            "fuzz_targets/{name}.rs does not call rr_fuzz::{name}"
        );
    }
    for (target, file, _) in KNOWN_BUGS {
        assert!(
            root().join("regressions").join(target).join(file).is_file(),
            "known bug regressions/{target}/{file} is missing"
        );
    }
}

/// The seeds as this build makes them (key files and sealed fragments
/// differ from the ones in `corpus/`: they draw fresh salts and nonces).
#[test]
fn fresh_seeds_run_clean() {
    for seed in rr_fuzz::seeds::seeds() {
        let (_, f) = rr_fuzz::TARGETS
            .iter()
            .find(|(n, _)| *n == seed.target)
            .expect("a seed of a known target");
        f(&seed.bytes);
    }
}
