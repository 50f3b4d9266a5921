//! Writes the seed corpora: `corpus/<target>/seed-<name>` for every seed of
//! `rr_fuzz::seeds::seeds` whose bytes are not in the corpus already (under
//! any name: `cargo fuzz cmin` renames files to their SHA-1). Inputs that
//! fuzzing kept are left alone.
//!
//! ```text
//! cargo run -p rr-fuzz --example gen_corpus
//! ```

use std::path::Path;

fn main() -> std::io::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    for (name, _) in rr_fuzz::TARGETS {
        std::fs::create_dir_all(root.join(name))?;
    }
    let (mut written, mut present) = (0, 0);
    for seed in rr_fuzz::seeds::seeds() {
        let dir = root.join(seed.target);
        let mut known = false;
        for entry in std::fs::read_dir(&dir)? {
            if std::fs::read(entry?.path())? == seed.bytes {
                known = true;
                break;
            }
        }
        if known {
            present += 1;
            continue;
        }
        std::fs::write(dir.join(format!("seed-{}", seed.name)), &seed.bytes)?;
        written += 1;
    }
    println!(
        "{written} seeds written, {present} already there, under {}",
        root.display()
    );
    Ok(())
}
