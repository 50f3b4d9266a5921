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

/// Child mode: commit blocks forever, reporting each committed height. With
/// `batched`, commits them in batches of 1 to 4 blocks with `commit_blocks`
/// and reports the head after each batch.
fn run_child(path: &str, batched: bool) -> ! {
    let ledger = Ledger::open(path).expect("child opens the ledger");
    let mut head = ledger.head().unwrap();
    let stdout = std::io::stdout();
    let mut round = 0u64;
    loop {
        let size = if batched { 1 + round % 4 } else { 1 };
        round += 1;
        let mut batch = Vec::new();
        let mut next = head;
        for _ in 0..size {
            let ctx = BlockContext {
                height: next.height + 1,
                time: Timestamp(1_000 + next.height),
            };
            let block = Block::new(ctx, next.block_hash, vec![]);
            let exec = Execution {
                receipts: vec![],
                writes: writes_for(ctx.height),
            };
            next = rr_storage::Head {
                height: ctx.height,
                block_hash: block.header.hash(),
                time: ctx.time,
                state_digest: Default::default(),
            };
            batch.push((block, exec));
        }
        head = if batched {
            ledger
                .commit_blocks(&batch, None)
                .unwrap()
                .last()
                .unwrap()
                .head
        } else {
            let (block, exec) = &batch[0];
            ledger.commit_block(block, exec).unwrap()
        };
        assert_eq!(
            (head.height, head.block_hash),
            (next.height, next.block_hash)
        );
        let mut out = stdout.lock();
        writeln!(out, "committed {}", head.height).unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn sigkill_mid_commit_loses_nothing_committed() {
    crash_rounds("sigkill_mid_commit_loses_nothing_committed", false);
}

#[test]
fn sigkill_mid_batch_commit_loses_nothing_committed() {
    crash_rounds("sigkill_mid_batch_commit_loses_nothing_committed", true);
}

/// Runs the child `test` (re-executing this binary), kills it with SIGKILL
/// three times mid-load, and checks after each that every reported commit
/// survived and the ledger is consistent.
fn crash_rounds(test: &str, batched: bool) {
    if let Ok(path) = std::env::var(CHILD_ENV) {
        run_child(&path, batched);
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.redb");
    let mut reported = 0u64;
    for round in 0..3 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([test, "--exact", "--nocapture"])
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
        // Recompute the state root from the blocks: every block is there,
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
            mem.apply(&writes_for(h));
        }
        let header = ledger.header(head.height).unwrap().unwrap();
        assert_eq!(header.hash(), head.state_digest);
        assert_eq!(mem.root(), header.state_root);
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
