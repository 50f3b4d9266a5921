//! A ledger writer killed with SIGKILL in the middle of its commits loses no
//! block whose commit had returned, and reopens consistent.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use rr_core::{Block, BlockContext, Execution, MemoryState, StateRead, Table, Timestamp, WriteSet};
use rr_storage::Ledger;

const CHILD_ENV: &str = "RR_LEDGER_CRASH_CHILD_DB";

fn writes_for(height: u64) -> WriteSet {
    let mut w = WriteSet::new();
    // Big enough values that a commit takes a while, so the kill lands mid-commit.
    let value = vec![(height % 251) as u8; 64 * 1024 + height as usize];
    w.put(Table::Records, height.to_be_bytes().to_vec(), value);
    w.put(
        Table::Nonces,
        b"last".to_vec(),
        height.to_be_bytes().to_vec(),
    );
    if height > 2 {
        w.delete(Table::Records, (height - 2).to_be_bytes().to_vec());
    }
    w
}

/// Child mode: commit blocks forever, reporting each committed height.
fn run_child(path: &str) -> ! {
    let ledger = Ledger::open(path).expect("child opens the ledger");
    let mut head = ledger.head().unwrap();
    let stdout = std::io::stdout();
    loop {
        let ctx = BlockContext {
            height: head.height + 1,
            time: Timestamp(1_000 + head.height),
        };
        let block = Block::new(ctx, head.block_hash, vec![]);
        let exec = Execution {
            receipts: vec![],
            writes: writes_for(ctx.height),
        };
        head = ledger.commit_block(&block, &exec).unwrap();
        let mut out = stdout.lock();
        writeln!(out, "committed {}", head.height).unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn sigkill_mid_commit_loses_nothing_committed() {
    if let Ok(path) = std::env::var(CHILD_ENV) {
        run_child(&path);
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.redb");
    let mut reported = 0u64;
    for round in 0..3 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "sigkill_mid_commit_loses_nothing_committed",
                "--exact",
                "--nocapture",
            ])
            .env(CHILD_ENV, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // Let it commit a varying number of blocks, then kill it without warning.
        let target = reported + 5 + 7 * round;
        for line in lines.by_ref() {
            let line = line.unwrap();
            if let Some(h) = line.strip_prefix("committed ") {
                reported = h.parse().unwrap();
                if reported >= target {
                    break;
                }
            }
        }
        child.kill().unwrap();
        child.wait().unwrap();
        // Anything it printed before dying was committed too.
        for line in lines.map_while(Result::ok) {
            if let Some(h) = line.strip_prefix("committed ") {
                reported = reported.max(h.parse().unwrap());
            }
        }

        let ledger = Ledger::open(&path).expect("reopens after SIGKILL");
        let head = ledger.head().unwrap();
        assert!(
            head.height >= reported,
            "round {round}: head {} lost committed block {reported}",
            head.height
        );
        // Recompute the state digest from the blocks: every block is there,
        // chained, and the state holds exactly their writes.
        let mut mem = MemoryState::new();
        let mut parent = rr_core::BlockHash::default();
        for h in 1..=head.height {
            let block = ledger
                .block(h)
                .unwrap()
                .expect("every block up to the head");
            assert_eq!(block.header.parent, parent);
            parent = block.header.hash();
            mem.apply(&block.header.context, &writes_for(h));
        }
        assert_eq!(mem.digest(), head.state_digest);
        let snap = ledger.snapshot().unwrap();
        assert_eq!(
            snap.get(Table::Nonces, b"last").unwrap(),
            Some(head.height.to_be_bytes().to_vec())
        );
        assert_eq!(
            snap.get(Table::Records, &head.height.to_be_bytes())
                .unwrap(),
            mem.get(Table::Records, &head.height.to_be_bytes()).unwrap()
        );
        reported = head.height;
    }
}
