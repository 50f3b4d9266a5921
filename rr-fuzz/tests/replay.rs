//! Replays every fuzz target's corpus (`corpus/<target>/`) and its
//! regressions (`regressions/<target>/`, the crashes fuzzing found) on
//! stable Rust, without libFuzzer: each file goes to `rr_fuzz::<target>`,
//! which panics on a bug. This is what `cargo test --workspace` runs.
//!
//! Every regression replays: a crash fuzzing finds lands together with its
//! fix, never as a skipped or ignored test.

use std::path::{Path, PathBuf};

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

/// Runs `f` on `path`'s bytes on a thread of its own; the panic message if
/// it panicked.
fn run(f: fn(&[u8]), path: &Path) -> Result<(), String> {
    let data = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    std::thread::Builder::new()
        .stack_size(STACK)
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
    let ran = corpus.len() + regressions.len();
    for path in corpus.iter().chain(&regressions) {
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
