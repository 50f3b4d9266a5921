use super::*;
use rr_core::cert::ReplicaSetInfo;
use rr_core::{
    BlockContext, CallOutput, ContractExecutor, ExecutionError, MemoryState, Outcome, StateRead,
    VerifiedTransaction, WriteSet,
};

fn block_after(head: &Head, time: u64) -> Block {
    Block::new(
        BlockContext {
            height: head.height + 1,
            time: Timestamp(time),
        },
        head.block_hash,
        vec![],
    )
}

fn exec(key: &[u8], value: &[u8]) -> Execution {
    let mut writes = WriteSet::new();
    writes.put(Table::Records, key.to_vec(), value.to_vec());
    Execution {
        receipts: vec![],
        writes,
    }
}

#[test]
fn commits_advance_the_head_persist_and_chain_headers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.redb");
    let ledger = Ledger::open(&path).unwrap();
    assert_eq!(ledger.head().unwrap(), Head::default());
    let genesis = ledger.header(0).unwrap().unwrap();
    assert_eq!(genesis, LedgerHeader::genesis_of(Digest::default()));
    let b1 = block_after(&ledger.head().unwrap(), 10);
    let h1 = ledger.commit_block(&b1, &exec(b"k", b"v1")).unwrap();
    assert_eq!(h1.height, 1);
    let b2 = block_after(&h1, 20);
    let mut e2 = exec(b"k2", b"v2");
    e2.writes.delete(Table::Records, b"k".to_vec());
    let h2 = ledger.commit_block(&b2, &e2).unwrap();
    drop(ledger);

    let ledger = Ledger::open(&path).unwrap();
    assert_eq!(ledger.head().unwrap(), h2);
    assert_eq!(ledger.block(1).unwrap().unwrap(), b1);
    let snap = ledger.snapshot().unwrap();
    assert_eq!(snap.get(Table::Records, b"k").unwrap(), None);
    assert_eq!(
        snap.get(Table::Records, b"k2").unwrap(),
        Some(b"v2".to_vec())
    );

    // Headers chain, commit to the blocks, and the state root is the one the
    // definition gives for the entries.
    let header1 = ledger.header(1).unwrap().unwrap();
    let header2 = ledger.header(2).unwrap().unwrap();
    assert_eq!(header1.parent, genesis.hash());
    assert_eq!(header2.parent, header1.hash());
    assert_eq!(header2.block, b2.header.hash());
    assert_eq!(h2.state_digest, header2.hash());
    let mut mem = MemoryState::new();
    mem.apply(&exec(b"k", b"v1").writes);
    assert_eq!(header1.state_root, mem.root());
    mem.apply(&e2.writes);
    assert_eq!(header2.state_root, mem.root());
}

#[test]
fn a_reader_proves_values_and_absences_against_its_head() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path().join("l.redb")).unwrap();
    let mut head = Head::default();
    for i in 0..20u8 {
        head = ledger
            .commit_block(&block_after(&head, 1 + i as u64), &exec(&[i], &[i, i]))
            .unwrap();
    }
    let reader = ledger.reader().unwrap();
    assert_eq!(reader.head(), head);
    let root = reader.header().state_root;
    for i in 0..25u8 {
        let e = reader.prove(Table::Records, &[i]).unwrap();
        assert_eq!(e.value, (i < 20).then(|| vec![i, i]));
        e.verify(&root).unwrap();
        // The same proof does not hold for another value or another table.
        let mut wrong = e.clone();
        wrong.value = Some(vec![9]);
        assert!(wrong.verify(&root).is_err());
        let mut other_table = e.clone();
        other_table.table = Table::Grants;
        assert!(other_table.verify(&root).is_err());
    }
    // A reader keeps its snapshot while the head moves on.
    ledger
        .commit_block(&block_after(&head, 100), &exec(&[0], b"changed"))
        .unwrap();
    let e = reader.prove(Table::Records, &[0]).unwrap();
    assert_eq!(e.value, Some(vec![0, 0]));
    e.verify(&root).unwrap();
    let fresh = ledger.reader().unwrap();
    assert_eq!(fresh.head().height, 21);
    let e = fresh.prove(Table::Records, &[0]).unwrap();
    assert_eq!(e.value, Some(b"changed".to_vec()));
    e.verify(&fresh.header().state_root).unwrap();
}

#[test]
fn receipts_are_proven_against_their_block_header() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path().join("l.redb")).unwrap();
    let block = block_after(&Head::default(), 5);
    let ctx = block.header.context;
    let receipts: Vec<Receipt> = (0..5u8)
        .map(|i| Receipt {
            tx: TxId([i + 1; 32]),
            context: ctx,
            index: i as u32,
            outcome: Outcome::Ok(CallOutput::Registered {
                record: RecordId([i; 32]),
            }),
        })
        .collect();
    ledger
        .commit_block(
            &block,
            &Execution {
                receipts: receipts.clone(),
                writes: WriteSet::new(),
            },
        )
        .unwrap();
    let header = ledger.header(1).unwrap().unwrap();
    assert_eq!(header.receipts, 5);
    for r in &receipts {
        let (got, proof, h) = ledger.receipt_proof(&r.tx).unwrap().unwrap();
        assert_eq!(&got, r);
        assert_eq!(h, header);
        proof
            .verify(&header.receipts_root, &merkle::leaf_hash(&r.to_bytes()))
            .unwrap();
    }
    assert!(ledger.receipt_proof(&TxId([99; 32])).unwrap().is_none());
    // Stored as the canonical encoding of the list, whatever its length.
    for n in [0, 1, 5, 200] {
        let many: Vec<Receipt> = receipts.iter().cycle().take(n).cloned().collect();
        let (stored, leaves) = super::encode_receipts(&many);
        assert_eq!(stored, rr_core::codec::encode(&many));
        assert_eq!(leaves.len(), n);
    }
    assert_eq!(ledger.block_receipts(1).unwrap(), Some(receipts));
}

#[test]
fn own_signatures_go_with_the_block_and_others_are_added_later() {
    use ed25519_dalek::SigningKey;
    let keys: Vec<SigningKey> = (1..=4u8)
        .map(|i| SigningKey::from_bytes(&[i; 32]))
        .collect();
    let set = ReplicaSetInfo::new(
        keys.iter()
            .map(|k| rr_core::AccountId::from_verifying_key(&k.verifying_key()))
            .collect(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.redb");
    let ledger = Ledger::open_for(&path, set.digest()).unwrap();
    let sign = |i: usize| {
        let k = keys[i].clone();
        move |h: &LedgerHeader| HeaderSignature {
            replica: rr_core::ReplicaId(i as u16),
            signature: h.sign(&k).to_vec(),
        }
    };
    let own = sign(0);
    let done = ledger
        .commit_blocks(
            &[(block_after(&Head::default(), 3), exec(b"a", b"1"))],
            Some(&own),
        )
        .unwrap();
    let cert = ledger.certificate(1).unwrap().unwrap();
    assert_eq!(cert.header, done[0].header);
    assert_eq!(cert.signatures.len(), 1);
    assert!(cert.verify(&set).is_err(), "one of four is no quorum");
    let mut sigs = cert.signatures.clone();
    sigs.push(sign(2)(&cert.header));
    sigs.push(sign(3)(&cert.header));
    ledger.put_signatures(1, &sigs).unwrap();
    let cert = ledger.certificate(1).unwrap().unwrap();
    let certified = cert.verify(&set).unwrap();
    assert_eq!(certified.height(), 1);
    drop(ledger);

    // Another replica set's digest: refused.
    let err = Ledger::open_for(&path, Digest([7; 32])).unwrap_err();
    assert!(
        matches!(err, LedgerError::ReplicaSetMismatch { .. }),
        "{err}"
    );
    // The set it was made for, or none named: fine.
    assert_eq!(Ledger::open(&path).unwrap().replica_set(), set.digest());
}

#[test]
fn records_after_walks_every_record_in_pages() {
    use rr_core::{AccountId, ContentId, SchemeId};
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path().join("l.redb")).unwrap();
    let mut writes = WriteSet::new();
    let mut ids = Vec::new();
    for i in 0..5u8 {
        let id = RecordId([i; 32]);
        let info = RecordInfo {
            id,
            owner: AccountId([7; 32]),
            cid: ContentId::from_sha256([i; 32]),
            size: 1,
            scheme: SchemeId::UMBRAL,
            record_key: vec![],
            capsule: vec![],
            media_type: "text/plain".into(),
            encrypted_metadata: None,
            registered: BlockContext {
                height: 1,
                time: Timestamp(1),
            },
            audit_len: 0,
        };
        writes.put(
            Table::Records,
            rr_core::state::keys::record(&id),
            info.to_bytes(),
        );
        ids.push(id);
    }
    let block = block_after(&Head::default(), 1);
    ledger
        .commit_block(
            &block,
            &Execution {
                receipts: vec![],
                writes,
            },
        )
        .unwrap();
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = ledger.records_after(after.as_ref(), 2).unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 2);
        after = page.last().map(|r| r.id);
        seen.extend(page.into_iter().map(|r| r.id));
    }
    assert_eq!(seen, ids);
}

#[test]
fn a_block_that_does_not_extend_the_head_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path().join("l.redb")).unwrap();
    let h1 = ledger
        .commit_block(&block_after(&Head::default(), 1), &exec(b"a", b"1"))
        .unwrap();
    // Same height again.
    let err = ledger
        .commit_block(&block_after(&Head::default(), 2), &exec(b"b", b"2"))
        .unwrap_err();
    assert!(
        matches!(err, LedgerError::NotNext { height: 1, .. }),
        "{err}"
    );
    // Right height, wrong parent.
    let mut forged = block_after(&h1, 3);
    forged.header.parent = BlockHash([9; 32]);
    assert!(ledger.commit_block(&forged, &exec(b"c", b"3")).is_err());
    assert_eq!(ledger.head().unwrap(), h1);
    let snap = ledger.snapshot().unwrap();
    assert_eq!(snap.get(Table::Records, b"b").unwrap(), None);
    assert_eq!(snap.get(Table::Records, b"c").unwrap(), None);
    // The state tree is still the head's.
    let reader = ledger.reader().unwrap();
    assert_eq!(reader.head(), h1);
    reader
        .prove(Table::Records, b"a")
        .unwrap()
        .verify(&reader.header().state_root)
        .unwrap();
}

/// A block after `head` with the execution of two calls, one of them the
/// transaction `dup` (so tx-index first-wins is exercised across blocks).
fn step(head: &Head, n: u8, dup: TxId) -> (Block, Execution) {
    let block = block_after(head, 100 + n as u64);
    let ctx = block.header.context;
    let receipt = |tx: TxId, index: u32| Receipt {
        tx,
        context: ctx,
        index,
        outcome: Outcome::Ok(CallOutput::Registered {
            record: RecordId([n; 32]),
        }),
    };
    let mut execution = exec(&[n], &[n, n]);
    if n > 1 {
        // Overwrite and delete what the block before wrote.
        execution.writes.delete(Table::Records, vec![n - 1]);
        execution
            .writes
            .put(Table::Nonces, b"last".to_vec(), vec![n]);
    }
    execution.receipts = vec![receipt(TxId([n; 32]), 0), receipt(dup, 1)];
    (block, execution)
}

/// Three chained blocks after `start` (their parents follow from the block
/// hashes alone).
fn batch_of_three(start: &Head) -> Vec<(Block, Execution)> {
    let dup = TxId([0xdd; 32]);
    let mut head = *start;
    let mut out = Vec::new();
    for n in 1..=3u8 {
        let (b, e) = step(&head, n, dup);
        head = Head {
            height: b.header.context.height,
            block_hash: b.header.hash(),
            time: b.header.context.time,
            state_digest: Digest::default(),
        };
        out.push((b, e));
    }
    out
}

type Dump = (
    Head,
    Vec<Block>,
    Vec<Vec<Receipt>>,
    Vec<LedgerHeader>,
    Entries,
    Entries,
);

fn dump(ledger: &Ledger) -> Dump {
    let head = ledger.head().unwrap();
    let blocks = (1..=head.height)
        .map(|h| ledger.block(h).unwrap().unwrap())
        .collect();
    let receipts = (1..=head.height)
        .map(|h| ledger.block_receipts(h).unwrap().unwrap())
        .collect();
    let headers = (0..=head.height)
        .map(|h| ledger.header(h).unwrap().unwrap())
        .collect();
    let snap = ledger.snapshot().unwrap();
    (
        head,
        blocks,
        receipts,
        headers,
        snap.scan_prefix(Table::Records, b"").unwrap(),
        snap.scan_prefix(Table::Nonces, b"").unwrap(),
    )
}

#[test]
fn a_batch_commit_equals_the_single_commits() {
    let dir = tempfile::tempdir().unwrap();
    let single = Ledger::open(dir.path().join("single.redb")).unwrap();
    let batched = Ledger::open(dir.path().join("batched.redb")).unwrap();
    let blocks = batch_of_three(&Head::default());
    let mut singles = Vec::new();
    for (b, e) in &blocks {
        singles.extend(single.commit_blocks(&[(b, e)], None).unwrap());
    }
    let together = batched.commit_blocks(&blocks, None).unwrap();
    assert_eq!(together, singles);
    assert_eq!(together.last().unwrap().head.height, 3);
    assert_eq!(dump(&batched), dump(&single));
    // The state root is the definition's, block after block.
    let mut mem = MemoryState::new();
    for ((_, e), c) in blocks.iter().zip(&together) {
        mem.apply(&e.writes);
        assert_eq!(c.header.state_root, mem.root());
    }
    // The later blocks' writes win, and the duplicate tx id keeps pointing
    // at its first receipt (block 1), within the batch as across commits.
    let snap = batched.snapshot().unwrap();
    assert_eq!(snap.get(Table::Records, &[1]).unwrap(), None);
    assert_eq!(snap.get(Table::Records, &[3]).unwrap(), Some(vec![3, 3]));
    let dup = batched.receipt(&TxId([0xdd; 32])).unwrap().unwrap();
    assert_eq!(dup.context.height, 1);
    assert_eq!(dup, single.receipt(&TxId([0xdd; 32])).unwrap().unwrap());
    assert_eq!(
        batched
            .receipt(&TxId([2; 32]))
            .unwrap()
            .unwrap()
            .context
            .height,
        2
    );
    // A second batch goes on from there; an empty batch changes nothing.
    let hb = together.last().unwrap().head;
    assert!(batched
        .commit_blocks::<Block, Execution>(&[], None)
        .unwrap()
        .is_empty());
    let (b4, e4) = step(&hb, 4, TxId([0xdd; 32]));
    let h4 = batched.commit_blocks(&[(&b4, &e4)], None).unwrap();
    assert_eq!(batched.head().unwrap(), h4[0].head);
    assert_eq!(h4[0].header.parent, together[2].header.hash());
}

#[test]
fn a_batch_with_a_block_that_does_not_chain_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path().join("l.redb")).unwrap();
    let h0 = ledger
        .commit_block(&block_after(&Head::default(), 1), &exec(b"a", b"1"))
        .unwrap();
    let mut blocks = batch_of_three(&h0);
    // The second block has the right height but the wrong parent.
    blocks[1].0.header.parent = BlockHash([9; 32]);
    let err = ledger.commit_blocks(&blocks, None).unwrap_err();
    assert!(
        matches!(
            err,
            LedgerError::NotNext {
                height: 3,
                head_height: 2,
                ..
            }
        ),
        "{err}"
    );
    // Nothing of the batch is there, not even its valid first block.
    assert_eq!(ledger.head().unwrap(), h0);
    assert_eq!(ledger.block(2).unwrap(), None);
    assert_eq!(ledger.header(2).unwrap(), None);
    assert_eq!(ledger.block_receipts(2).unwrap(), None);
    assert_eq!(ledger.receipt(&TxId([1; 32])).unwrap(), None);
    assert_eq!(ledger.receipt(&TxId([0xdd; 32])).unwrap(), None);
    let snap = ledger.snapshot().unwrap();
    assert_eq!(snap.get(Table::Records, &[1]).unwrap(), None);
    assert_eq!(snap.get(Table::Nonces, b"last").unwrap(), None);
    assert_eq!(snap.get(Table::Records, b"a").unwrap(), Some(b"1".to_vec()));
    // A batch whose second block repeats the first's height is refused too.
    let mut blocks = batch_of_three(&h0);
    blocks[1] = blocks[0].clone();
    assert!(ledger.commit_blocks(&blocks, None).is_err());
    assert_eq!(ledger.head().unwrap(), h0);
    // The untouched batch then commits.
    let blocks = batch_of_three(&h0);
    let done = ledger.commit_blocks(&blocks, None).unwrap();
    assert_eq!(done.last().unwrap().head.height, 4);
    assert_eq!(
        done[0].header.parent,
        ledger.header(1).unwrap().unwrap().hash()
    );
}

#[test]
fn refuses_a_file_that_is_not_a_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("junk.redb");
    std::fs::write(&path, b"this is not a redb file at all, just some text").unwrap();
    let err = Ledger::open(&path).unwrap_err();
    assert!(err.to_string().contains("junk.redb"), "{err}");
}

#[test]
fn state_that_does_not_match_its_header_is_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.redb");
    let ledger = Ledger::open(&path).unwrap();
    ledger
        .commit_block(&block_after(&Head::default(), 1), &exec(b"a", b"1"))
        .unwrap();
    drop(ledger);
    // Change a state value behind the ledger's back.
    {
        let db = Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(state_table(Table::Records))
            .unwrap()
            .insert(b"a".as_slice(), b"2".as_slice())
            .unwrap();
        txn.commit().unwrap();
    }
    let err = Ledger::open(&path).unwrap_err();
    assert!(matches!(err, LedgerError::Corrupt(_)), "{err}");
    assert!(err.to_string().contains("certifies"), "{err}");
}

/// An executor for the migration tests: each call writes its signer's nonce
/// (as the nonce table of the native contracts does) and a replay is
/// refused; `flip_at` refuses everything in one block (rules that changed).
struct NonceExec {
    flip_at: u64,
}

impl ContractExecutor for NonceExec {
    fn execute(
        &self,
        state: &dyn StateRead,
        ctx: &BlockContext,
        txs: &[VerifiedTransaction],
    ) -> Result<Execution, ExecutionError> {
        let mut overlay = rr_core::Overlay::new(state);
        let mut receipts = Vec::new();
        for (i, tx) in txs.iter().enumerate() {
            let key = rr_core::state::keys::nonce(&tx.signer(), tx.body().nonce);
            let refused = ctx.height == self.flip_at || overlay.get(Table::Nonces, &key)?.is_some();
            let outcome = if refused {
                Outcome::Refused(rr_core::Refusal {
                    code: rr_core::ErrorCode::ReplayedNonce,
                    message: "replayed".into(),
                })
            } else {
                overlay.writes.put(Table::Nonces, key, vec![]);
                Outcome::Ok(CallOutput::Revoked {
                    grant: rr_core::GrantId([0; 32]),
                })
            };
            receipts.push(Receipt {
                tx: tx.id(),
                context: *ctx,
                index: i as u32,
                outcome,
            });
        }
        Ok(Execution {
            receipts,
            writes: overlay.writes,
        })
    }
}

/// Writes a ledger of the first format holding `blocks` blocks of two calls
/// each (one a replay), executed by [`NonceExec`], as the first format
/// stored them.
fn write_v1(path: &Path, blocks: u64) -> Vec<Vec<Receipt>> {
    use ed25519_dalek::SigningKey;
    let key = SigningKey::from_bytes(&[5; 32]);
    let signer = rr_core::AccountId::from_verifying_key(&key.verifying_key());
    let call = |nonce: u64| {
        rr_core::TxBody {
            signer,
            nonce,
            call: rr_core::Call::Revoke(rr_core::Revoke {
                grant: rr_core::GrantId([1; 32]),
            }),
        }
        .sign(&key)
    };
    let db = Database::create(path).unwrap();
    let txn = db.begin_write().unwrap();
    let mut mem = MemoryState::new();
    let mut head = Head::default();
    let mut all = Vec::new();
    {
        let mut meta = txn.open_table(META).unwrap();
        meta.insert(FORMAT_KEY, FORMAT_V1).unwrap();
        let mut bt = txn.open_table(BLOCKS).unwrap();
        let mut rt = txn.open_table(BLOCK_RECEIPTS).unwrap();
        for h in 1..=blocks {
            let txs = vec![call(h), call(h.saturating_sub(1).max(1))];
            let block = Block::new(
                BlockContext {
                    height: h,
                    time: Timestamp(1_000 + h),
                },
                head.block_hash,
                txs.clone(),
            );
            let verified: Vec<_> = txs
                .into_iter()
                .map(VerifiedTransaction::from_trusted)
                .collect();
            let e = NonceExec { flip_at: 0 }
                .execute(&mem, &block.header.context, &verified)
                .unwrap();
            mem.apply(&e.writes);
            bt.insert(h, block.to_bytes().as_slice()).unwrap();
            rt.insert(h, rr_core::codec::encode(&e.receipts).as_slice())
                .unwrap();
            head = Head {
                height: h,
                block_hash: block.header.hash(),
                time: block.header.context.time,
                // The first format's hash chain: never read by the migration.
                state_digest: Digest([0xaa; 32]),
            };
            all.push(e.receipts);
        }
        meta.insert(HEAD_KEY, rr_core::codec::encode(&head).as_slice())
            .unwrap();
    }
    txn.commit().unwrap();
    all
}

#[test]
fn a_first_format_ledger_is_refused_then_migrated_by_replaying_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.redb");
    let receipts = write_v1(&path, 150);
    let err = Ledger::open(&path).unwrap_err();
    assert!(matches!(err, LedgerError::NeedsMigration { .. }), "{err}");

    // Rules that changed since: the migration stops and changes nothing.
    let err = migrate_v1(&path, Digest([3; 32]), &NonceExec { flip_at: 77 }, None).unwrap_err();
    assert!(err.to_string().contains("block 77"), "{err}");
    assert!(matches!(
        Ledger::open(&path),
        Err(LedgerError::NeedsMigration { .. })
    ));
    assert!(!with_suffix(&path, ".v1").exists());

    let report = migrate_v1(&path, Digest([3; 32]), &NonceExec { flip_at: 0 }, None).unwrap();
    assert_eq!(report.blocks, 150);
    assert!(report.backup.exists());
    let ledger = Ledger::open(&path).unwrap();
    assert_eq!(ledger.replica_set(), Digest([3; 32]));
    assert_eq!(ledger.head().unwrap().height, 150);
    for (h, r) in receipts.iter().enumerate() {
        assert_eq!(&ledger.block_receipts(h as u64 + 1).unwrap().unwrap(), r);
    }
    // Certified from the first block on: every header chains.
    for h in 1..=150 {
        assert_eq!(
            ledger.header(h).unwrap().unwrap().parent,
            ledger.header(h - 1).unwrap().unwrap().hash()
        );
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}
