//! Valid inputs for every target, made from the fixed world: what the seed
//! corpora (`corpus/<target>/seed-*`) hold. `examples/gen_corpus.rs` writes
//! them; the replay test checks that each still decodes.

use std::collections::BTreeMap;

use rr_consensus::pbft::message::{
    Batch, BlocksReply, CheckpointCert, CommitCert, NewView, PrePrepare, PreparedCert,
    Proof as PbftProof, Status, ViewChange, Vote,
};
use rr_consensus::pbft::{plan_new_view, HeaderVote, Payload, SignedMessage};
use rr_core::block::{AuditAction, CallOutput, GrantStatus, Outcome, PolicyCode, Refusal};
use rr_core::cert::{Certificate, LedgerHeader};
use rr_core::proof::{CertifiedReceipt, ProvenEntry, SignedFragment, StateAnswer};
use rr_core::state::keys;
use rr_core::{
    codec, merkle, smt, AuditEntry, Block, BlockContext, BlockHash, Call, ConfirmErasure,
    ContentId, CountKind, Digest, ErrorCode, Grant, GrantId, GrantInfo, Purpose, Receipt,
    RecordInfo, RegisterRecord, ReplicaId, Retrieve, Revoke, SchemeId, SignedTransaction, Table,
    Timestamp, TxBody, WireEncoding,
};
use rr_node::http::{authorization_header, ErrorBody, ErrorDetail};
use rr_node::keystore::{KdfParams, Keystore};
use rr_node::receipt::{Proof, ReceiptFile, FORMAT};
use rr_node::sealing::{seal, SealingKey};
use rr_node::{
    Authorization, ClusterFile, ClusterMember, FragmentDelivery, NodeInfo, Peer, Retrieval,
    RootIdentity, SchemeInfo, SkippedReplica,
};
use rr_pre::envelope;
use rr_storage::Head;

use crate::fixture::{account, fixture, rng, PASSPHRASE, REPLICAS};

/// One seed: its target, a name, and its bytes.
#[derive(Clone, Debug)]
pub struct Seed {
    /// The target it is for.
    pub target: &'static str,
    /// A name for the file (`seed-<name>`).
    pub name: String,
    /// The input.
    pub bytes: Vec<u8>,
}

struct Seeds(Vec<Seed>);

impl Seeds {
    fn add(&mut self, target: &'static str, name: &str, bytes: impl Into<Vec<u8>>) {
        self.0.push(Seed {
            target,
            name: name.to_string(),
            bytes: bytes.into(),
        });
    }

    fn json(&mut self, target: &'static str, name: &str, value: &impl serde::Serialize) {
        let bytes = serde_json::to_vec(value).expect("a seed encodes");
        self.add(target, name, bytes);
    }
}

const TIME: Timestamp = Timestamp(1_764_900_000_000);
const HEIGHT: u64 = 5;

fn ctx() -> BlockContext {
    BlockContext {
        height: HEIGHT,
        time: TIME,
    }
}

fn purpose() -> Purpose {
    Purpose::new("treatment").expect("a purpose")
}

/// The world's ledger: a record of Alice's granted to Bob, retrieved once.
struct Ledger {
    txs: Vec<SignedTransaction>,
    record: RecordInfo,
    grant: GrantInfo,
    audit: Vec<AuditEntry>,
    receipts: Vec<Receipt>,
    entries: BTreeMap<(Table, Vec<u8>), Vec<u8>>,
}

fn ledger() -> Ledger {
    let fx = fixture();
    let u = &fx.umbral;
    let (alice, bob) = (account(&fx.alice), account(&fx.bob));
    let register = TxBody {
        signer: alice,
        nonce: 1,
        call: Call::RegisterRecord(RegisterRecord {
            salt: [3; 16],
            cid: ContentId::from_sha256([4; 32]),
            size: 1234,
            scheme: SchemeId::UMBRAL,
            record_key: u.record_pk.to_bytes(),
            capsule: u.capsule.to_bytes(),
            media_type: "application/fhir+json".into(),
            encrypted_metadata: Some(vec![5; 24]),
        }),
    }
    .sign(&fx.alice);
    let grant_call = Grant {
        record: u.record,
        grantee: bob,
        grantee_key: u.grantee_pk.to_bytes(),
        threshold: u.threshold,
        fragment_commitments: (0..REPLICAS as u8).map(|i| Digest([i; 32])).collect(),
        purpose: purpose(),
        expires_at: Some(Timestamp(TIME.0 + 86_400_000)),
    };
    let grant = TxBody {
        signer: alice,
        nonce: 2,
        call: Call::Grant(grant_call.clone()),
    }
    .sign(&fx.alice);
    let retrieve = TxBody {
        signer: bob,
        nonce: 1,
        call: Call::Retrieve(Retrieve {
            grant: fx.grant,
            purpose: purpose(),
        }),
    }
    .sign(&fx.bob);
    let txs = vec![register, grant, retrieve];
    let record = RecordInfo {
        id: u.record,
        owner: alice,
        cid: ContentId::from_sha256([4; 32]),
        size: 1234,
        scheme: SchemeId::UMBRAL,
        record_key: u.record_pk.to_bytes(),
        capsule: u.capsule.to_bytes(),
        media_type: "application/fhir+json".into(),
        encrypted_metadata: Some(vec![5; 24]),
        registered: ctx(),
        audit_len: 3,
    };
    let grant_info = GrantInfo {
        id: fx.grant,
        record: u.record,
        owner: alice,
        grantee: bob,
        grantee_key: grant_call.grantee_key,
        threshold: grant_call.threshold,
        fragment_commitments: grant_call.fragment_commitments,
        purpose: purpose(),
        expires_at: grant_call.expires_at,
        granted: ctx(),
        status: GrantStatus::Active,
        erased_by: Vec::new(),
        single_proxy: false,
    };
    let actions = [
        (AuditAction::Register, alice, None, None),
        (AuditAction::Grant, alice, Some(fx.grant), Some(purpose())),
        (AuditAction::Retrieve, bob, Some(fx.grant), Some(purpose())),
    ];
    let audit: Vec<AuditEntry> = actions
        .into_iter()
        .zip(&txs)
        .enumerate()
        .map(|(seq, ((action, actor, grant, purpose), tx))| AuditEntry {
            record: u.record,
            seq: seq as u64,
            at: ctx(),
            tx: tx.id(),
            actor,
            action,
            grant,
            purpose,
            refused: None,
        })
        .collect();
    let outputs = [
        CallOutput::Registered { record: u.record },
        CallOutput::Granted { grant: fx.grant },
        CallOutput::Retrieved {
            record: u.record,
            grant: fx.grant,
        },
    ];
    let receipts = txs
        .iter()
        .zip(outputs)
        .enumerate()
        .map(|(i, (tx, out))| Receipt {
            tx: tx.id(),
            context: ctx(),
            index: i as u32,
            outcome: Outcome::Ok(out),
        })
        .collect();
    let mut entries = BTreeMap::new();
    entries.insert((Table::Records, keys::record(&u.record)), record.to_bytes());
    entries.insert(
        (Table::Grants, keys::grant(&fx.grant)),
        grant_info.to_bytes(),
    );
    for a in &audit {
        entries.insert((Table::Audit, keys::audit(&u.record, a.seq)), a.to_bytes());
    }
    for (kind, id) in [
        (CountKind::OwnerRecords, alice.0),
        (CountKind::RecordGrants, u.record.0),
        (CountKind::GranteeGrants, bob.0),
    ] {
        entries.insert(
            (Table::Counts, keys::count(kind, &id)),
            keys::count_value(1),
        );
    }
    entries.insert(
        (Table::OwnerRecords, keys::owner_record(&alice, 0)),
        u.record.0.to_vec(),
    );
    entries.insert(
        (Table::RecordGrants, keys::record_grant(&u.record, 0)),
        fx.grant.0.to_vec(),
    );
    entries.insert(
        (Table::GranteeGrants, keys::grantee_grant(&bob, 0)),
        fx.grant.0.to_vec(),
    );
    Ledger {
        txs,
        record,
        grant: grant_info,
        audit,
        receipts,
        entries,
    }
}

impl Ledger {
    fn hashed(&self) -> Vec<(Digest, Digest)> {
        self.entries
            .iter()
            .map(|((t, k), v)| (smt::key_hash(t.id(), k), smt::value_hash(v)))
            .collect()
    }

    fn leaves(&self) -> Vec<Digest> {
        self.receipts
            .iter()
            .map(|r| merkle::leaf_hash(&r.to_bytes()))
            .collect()
    }

    fn header(&self) -> LedgerHeader {
        let block = Block::new(ctx(), BlockHash([6; 32]), self.txs.clone());
        LedgerHeader {
            replica_set: fixture().set_info.digest(),
            height: HEIGHT,
            time: TIME,
            block: block.header.hash(),
            parent: Digest([7; 32]),
            state_root: smt::reference_root(&self.hashed()),
            receipts_root: merkle::root(&self.leaves()),
            receipts: self.receipts.len() as u32,
        }
    }

    /// The header, signed by replicas `signers`.
    fn certificate(&self, signers: &[u16]) -> Certificate {
        let header = self.header();
        let mut cert = Certificate::new(header.clone());
        for &i in signers {
            cert.add(
                ReplicaId(i),
                header.sign(&fixture().replica_keys[usize::from(i)]),
            );
        }
        cert
    }

    /// A proof of `key` in `table`: its value, or its absence.
    fn proven(&self, table: Table, key: Vec<u8>) -> ProvenEntry {
        let value = self.entries.get(&(table, key.clone())).cloned();
        let proof = smt::reference_proof(&self.hashed(), &smt::key_hash(table.id(), &key));
        ProvenEntry {
            table,
            key,
            value,
            proof,
        }
    }

    fn record_answer(&self) -> StateAnswer {
        let id = self.record.id;
        let mut entries = vec![
            self.proven(Table::Records, keys::record(&id)),
            self.proven(Table::Counts, keys::count(CountKind::RecordGrants, &id.0)),
            self.proven(Table::RecordGrants, keys::record_grant(&id, 0)),
            self.proven(Table::Grants, keys::grant(&self.grant.id)),
        ];
        for a in &self.audit {
            entries.push(self.proven(Table::Audit, keys::audit(&id, a.seq)));
        }
        StateAnswer {
            certificate: self.certificate(&[0, 1, 2]),
            entries,
        }
    }

    fn grant_answer(&self) -> StateAnswer {
        StateAnswer {
            certificate: self.certificate(&[1, 2, 3]),
            entries: vec![
                self.proven(Table::Grants, keys::grant(&self.grant.id)),
                // An absent grant: an exclusion proof.
                self.proven(Table::Grants, keys::grant(&GrantId([9; 32]))),
            ],
        }
    }

    fn listing_answer(&self) -> StateAnswer {
        let alice = self.record.owner;
        StateAnswer {
            certificate: self.certificate(&[0, 1, 2, 3]),
            entries: vec![
                self.proven(
                    Table::Counts,
                    keys::count(CountKind::OwnerRecords, &alice.0),
                ),
                self.proven(Table::OwnerRecords, keys::owner_record(&alice, 0)),
                self.proven(Table::Records, keys::record(&self.record.id)),
            ],
        }
    }

    fn certified_receipt(&self, index: usize) -> CertifiedReceipt {
        CertifiedReceipt {
            receipt: self.receipts[index].clone(),
            proof: merkle::prove(&self.leaves(), index),
            certificate: self.certificate(&[0, 2, 3]),
        }
    }
}

fn replica_messages(s: &mut Seeds, l: &Ledger) {
    let fx = fixture();
    let key = |i: u16| fx.replica_key(ReplicaId(i)).expect("a replica");
    let batch = Batch {
        time: TIME,
        parent: BlockHash::default(),
        txs: l.txs[..2].to_vec(),
    };
    let digest = batch.digest(1);
    let pre_prepare = SignedMessage::sign(
        &key(0),
        Payload::PrePrepare(PrePrepare {
            view: 0,
            seq: 1,
            batch: batch.clone(),
        }),
    );
    let vote = Vote {
        view: 0,
        seq: 1,
        digest,
    };
    let prepares: Vec<_> = [1, 2]
        .map(|i| SignedMessage::sign(&key(i), Payload::Prepare(vote)))
        .into();
    let commits: Vec<_> = [0, 1, 2]
        .map(|i| SignedMessage::sign(&key(i), Payload::Commit(vote)))
        .into();
    let head = Head {
        height: 1,
        block_hash: digest,
        time: TIME,
        state_digest: Digest([8; 32]),
    };
    let checkpoint = CheckpointCert {
        votes: [0, 1, 2]
            .map(|i| SignedMessage::sign(&key(i), Payload::Checkpoint(head)))
            .into(),
    };
    let prepared = PreparedCert {
        pre_prepare: pre_prepare.clone(),
        prepares: prepares.clone(),
    };
    // Replicas 1..=3 move to view 1; replica 1 is its primary.
    let view_changes: Vec<ViewChange> = vec![
        ViewChange {
            new_view: 1,
            checkpoint: None,
            prepared: vec![prepared.clone()],
        },
        ViewChange {
            new_view: 1,
            checkpoint: None,
            prepared: vec![prepared.clone()],
        },
        ViewChange {
            new_view: 1,
            checkpoint: None,
            prepared: Vec::new(),
        },
    ];
    let plan = plan_new_view(&view_changes);
    let new_view = NewView {
        view: 1,
        view_changes: view_changes
            .iter()
            .zip([1, 2, 3])
            .map(|(vc, i)| SignedMessage::sign(&key(i), Payload::ViewChange(vc.clone())))
            .collect(),
        pre_prepares: plan
            .batches
            .iter()
            .map(|(seq, batch)| {
                SignedMessage::sign(
                    &key(1),
                    Payload::PrePrepare(PrePrepare {
                        view: 1,
                        seq: *seq,
                        batch: batch.clone(),
                    }),
                )
            })
            .collect(),
    };
    let view_change_with_checkpoint = ViewChange {
        new_view: 2,
        checkpoint: Some(checkpoint.clone()),
        prepared: Vec::new(),
    };
    let messages = [
        ("pre-prepare", pre_prepare.clone()),
        ("prepare", prepares[0].clone()),
        ("commit", commits[0].clone()),
        ("checkpoint", checkpoint.votes[0].clone()),
        (
            "view-change",
            SignedMessage::sign(&key(2), Payload::ViewChange(view_changes[0].clone())),
        ),
        (
            "view-change-checkpoint",
            SignedMessage::sign(&key(3), Payload::ViewChange(view_change_with_checkpoint)),
        ),
        (
            "new-view",
            SignedMessage::sign(&key(1), Payload::NewView(new_view)),
        ),
        (
            "forward",
            SignedMessage::sign(&key(3), Payload::Forward(l.txs[2..].to_vec())),
        ),
        (
            "status",
            SignedMessage::sign(
                &key(2),
                Payload::Status(Status {
                    view: 0,
                    executed: 1,
                }),
            ),
        ),
        (
            "fetch",
            SignedMessage::sign(&key(3), Payload::Fetch { from: 1 }),
        ),
        (
            "blocks",
            SignedMessage::sign(
                &key(0),
                Payload::Blocks(BlocksReply {
                    blocks: vec![batch.to_block(1)],
                    headers: Vec::new(),
                    proof: PbftProof::Commit(CommitCert {
                        commits: commits.clone(),
                    }),
                }),
            ),
        ),
        (
            "header-vote",
            SignedMessage::sign(
                &key(0),
                Payload::HeaderVote(HeaderVote {
                    height: HEIGHT,
                    header: l.header().hash(),
                }),
            ),
        ),
    ];
    for (name, m) in &messages {
        s.add("replica_message", name, m.to_bytes());
    }
    s.add("replica_message", "wal-prepared", codec::encode(&prepared));
    s.add(
        "replica_message",
        "wal-checkpoint",
        codec::encode(&checkpoint),
    );
    s.add(
        "canonical_encoding",
        "replica-message",
        pre_prepare.to_bytes(),
    );

    // The transport: a hello (and a proof that cannot hold) from an
    // unauthenticated peer; frames from an authenticated replica 1.
    let frame = |body: &[u8]| {
        let mut f = (body.len() as u32).to_be_bytes().to_vec();
        f.extend_from_slice(body);
        f
    };
    // Hello { from: 1, to: 0, nonce }: variant 0, then the fields.
    let mut hello = vec![0u8, 1, 0];
    hello.extend_from_slice(&[0x5a; 32]);
    // Proof { signature }: variant 2, 64 bytes.
    let mut proof = vec![2u8, 64];
    proof.extend_from_slice(&[0; 64]);
    s.add("handshake", "hello", [&[0][..], &frame(&hello)].concat());
    s.add(
        "handshake",
        "hello-proof",
        [&[0][..], &frame(&hello), &frame(&proof)].concat(),
    );
    s.add(
        "handshake",
        "authenticated-messages",
        [
            &[1][..],
            &frame(&messages[8].1.to_bytes()),
            &frame(&messages[1].1.to_bytes()),
        ]
        .concat(),
    );
}

fn core_values(s: &mut Seeds, l: &Ledger) {
    let fx = fixture();
    for (tx, name) in l.txs.iter().zip(["register", "grant", "retrieve"]) {
        s.add("transaction", name, tx.to_bytes());
        s.add("call", name, codec::encode(&tx.body.call));
    }
    let revoke = TxBody {
        signer: account(&fx.alice),
        nonce: 3,
        call: Call::Revoke(Revoke { grant: fx.grant }),
    };
    s.add(
        "transaction",
        "revoke",
        revoke.clone().sign(&fx.alice).to_bytes(),
    );
    let erasure = TxBody {
        signer: account(&fx.replica_keys[2]),
        nonce: 1,
        call: Call::ConfirmErasure(ConfirmErasure {
            grant: fx.grant,
            replica: ReplicaId(2),
        }),
    };
    s.add(
        "transaction",
        "confirm-erasure",
        erasure.clone().sign(&fx.replica_keys[2]).to_bytes(),
    );
    s.json("transaction", "grant.json", &l.txs[1]);
    s.add("call", "body-revoke", codec::encode(&revoke));
    s.add("call", "body-erasure", codec::encode(&erasure));
    s.json("call", "grant.json", &l.txs[1].body.call);

    let block = Block::new(ctx(), BlockHash([6; 32]), l.txs.clone());
    s.add("block", "three-txs", block.to_bytes());
    s.add(
        "block",
        "empty",
        Block::new(
            BlockContext {
                height: 1,
                time: TIME,
            },
            BlockHash::default(),
            Vec::new(),
        )
        .to_bytes(),
    );

    s.add("ledger_values", "receipt", l.receipts[0].to_bytes());
    let refused = Receipt {
        outcome: Outcome::Refused(Refusal {
            code: ErrorCode::Policy(PolicyCode::new("purpose_not_allowed").expect("a code")),
            message: "research is not allowed for this record".into(),
        }),
        ..l.receipts[2].clone()
    };
    s.add("ledger_values", "receipt-refused", refused.to_bytes());
    s.add("ledger_values", "record", l.record.to_bytes());
    let revoked = GrantInfo {
        status: GrantStatus::Revoked { at: ctx() },
        erased_by: vec![ReplicaId(0), ReplicaId(3)],
        ..l.grant.clone()
    };
    s.add("ledger_values", "grant-revoked", revoked.to_bytes());
    let audit = AuditEntry {
        refused: Some(ErrorCode::GrantRevoked),
        ..l.audit[2].clone()
    };
    s.add("ledger_values", "audit-refused", audit.to_bytes());

    let cert = l.certificate(&[0, 1, 2]);
    s.add("certificate", "certificate", cert.to_bytes());
    s.add("certificate", "header", cert.header.to_bytes());
    s.json("certificate", "certificate.json", &cert);
    s.json("certificate", "replica-set.json", &fx.set_info);

    s.json("state_answer", "record.json", &l.record_answer());
    s.json("state_answer", "grant.json", &l.grant_answer());
    s.json("state_answer", "listing.json", &l.listing_answer());
    s.json("certified_receipt", "grant.json", &l.certified_receipt(1));
    s.json(
        "certified_receipt",
        "retrieve.json",
        &l.certified_receipt(2),
    );

    let fragment = |i: usize, bytes: Vec<u8>| {
        SignedFragment::sign(
            &fx.replica_keys[i],
            &fx.retrieve_tx,
            &fx.grant,
            ReplicaId(i as u16),
            bytes,
        )
    };
    s.json(
        "signed_fragment",
        "umbral.json",
        &fragment(0, fx.umbral.cfrags[0].to_bytes()),
    );
    s.json(
        "signed_fragment",
        "recrypt.json",
        &fragment(3, fx.recrypt.cfrags[3].to_bytes()),
    );

    for (name, bytes) in [
        ("transaction", l.txs[1].to_bytes()),
        ("block", block.to_bytes()),
        ("record", l.record.to_bytes()),
        ("certificate", cert.to_bytes()),
    ] {
        s.add("canonical_encoding", name, bytes);
    }

    // What a client reads over HTTP.
    let peers: Vec<Peer> = fx
        .replica_keys
        .iter()
        .enumerate()
        .map(|(i, k)| Peer {
            p2p: format!("127.0.0.1:{}", 7000 + i)
                .parse()
                .expect("an address"),
            api: format!("http://127.0.0.1:{}", 7700 + i),
            public_key: hex::encode(k.verifying_key().as_bytes()),
            sealing_key: SealingKey::derive(&[0x61 + i as u8; 32]).public().to_hex(),
        })
        .collect();
    let info = NodeInfo {
        replica: ReplicaId(0),
        replicas: REPLICAS as u16,
        faults_tolerated: 1,
        scheme: SchemeId::UMBRAL,
        schemes: vec![SchemeInfo {
            id: SchemeId::UMBRAL,
            name: "umbral".into(),
            single_proxy: false,
            note: "m of n replicas re-encrypt".into(),
        }],
        status: rr_core::EngineStatus {
            engine: "pbft".into(),
            height: HEIGHT,
            block_hash: l.header().block,
            time: TIME,
            state_digest: l.header().hash(),
            replicas: REPLICAS as u16,
            faults_tolerated: 1,
            view: Some(0),
            primary: Some(ReplicaId(0)),
            changing_to: None,
            view_changes: 0,
        },
        replica_set: fx.set_info.clone(),
        single_proxy_allowed: false,
        peers: peers.clone(),
    };
    s.json("http_messages", "info.json", &info);
    s.json(
        "http_messages",
        "retrieval.json",
        &Retrieval {
            receipt: l.certified_receipt(2),
            state: l.grant_answer(),
            fragment: Some(fragment(1, fx.umbral.cfrags[1].to_bytes())),
            note: None,
            withheld: None,
        },
    );
    s.json(
        "http_messages",
        "delivery.json",
        &FragmentDelivery {
            delivered: vec![ReplicaId(0), ReplicaId(1)],
            skipped: vec![SkippedReplica {
                replica: ReplicaId(2),
                reason: "unreachable".into(),
            }],
        },
    );
    s.json(
        "http_messages",
        "error.json",
        &ErrorBody {
            error: ErrorDetail {
                code: "policy.purpose_not_allowed".into(),
                message: "no".into(),
            },
        },
    );
    let auth = Authorization::sign(&fx.alice, &fx.set_info.digest(), "audit 00");
    s.add(
        "http_messages",
        "authorization",
        authorization_header(&auth),
    );

    // cluster.json as `rr-node localnet` writes it.
    let cluster = ClusterFile {
        n: REPLICAS,
        f: 1,
        scheme: "umbral".into(),
        replicas: peers
            .iter()
            .enumerate()
            .map(|(i, p)| ClusterMember {
                replica: i as u16,
                api: p.api.clone(),
                p2p: p.p2p,
                public_key: p.public_key.clone(),
                sealing_key: p.sealing_key.clone(),
                pid: (i % 2 == 0).then_some(4000 + i as u32),
                config: format!("/tmp/cluster/r{i}/node.toml").into(),
                log: format!("/tmp/cluster/r{i}/node.log").into(),
            })
            .collect(),
        ca: None,
    };
    s.json("cluster_file", "cluster.json", &cluster);

    let receipt_file = |proof| ReceiptFile {
        format: FORMAT.into(),
        replica_set: fx.set_info.clone(),
        exported_at: TIME,
        proof,
    };
    let files = [
        (
            "transaction.json",
            receipt_file(Proof::Transaction {
                tx: l.receipts[1].tx,
                receipt: l.certified_receipt(1),
            }),
        ),
        (
            "grant.json",
            receipt_file(Proof::Grant {
                grant: fx.grant,
                state: l.grant_answer(),
            }),
        ),
        (
            "record.json",
            receipt_file(Proof::Record {
                record: l.record.id,
                state: l.record_answer(),
            }),
        ),
    ];
    for (name, file) in files {
        // As `rr receipt export` writes them (pretty), and compact.
        if name == "record.json" {
            s.add("receipt_file", name, file.to_json());
        } else {
            s.json("receipt_file", name, &file);
        }
    }
}

fn pre_values(s: &mut Seeds) {
    let fx = fixture();
    let (u, r) = (&fx.umbral, &fx.recrypt);
    s.add("umbral_public_key", "record", u.record_pk.to_bytes());
    s.add("umbral_public_key", "account", u.grantee_pk.to_bytes());
    s.add("umbral_capsule", "capsule", u.capsule.to_bytes());
    s.add("umbral_key_frag", "kfrag-0", u.kfrags[0].to_bytes());
    s.add("umbral_key_frag", "kfrag-3", u.kfrags[3].to_bytes());
    s.add("umbral_capsule_frag", "cfrag-0", u.cfrags[0].to_bytes());
    s.add("umbral_capsule_frag", "cfrag-2", u.cfrags[2].to_bytes());
    s.add("recrypt_public_key", "record", r.record_pk.to_bytes());
    s.add("recrypt_public_key", "account", r.grantee_pk.to_bytes());
    s.add("recrypt_capsule", "capsule", r.capsule.to_bytes());
    s.add("recrypt_key_frag", "kfrag-0", r.kfrags[0].to_bytes());
    s.add("recrypt_capsule_frag", "cfrag-0", r.cfrags[0].to_bytes());

    let key = &fx.envelope_key;
    let mut r = rng(9);
    s.add(
        "envelope",
        "short",
        [&[0][..], &envelope::seal(key, &mut r, b"blood type: AB-")].concat(),
    );
    s.add(
        "envelope",
        "empty",
        [&[0][..], &envelope::seal(key, &mut r, b"")].concat(),
    );
    // [1, op, pos, len, fill]: intact, a flipped bit, a truncation, an
    // appended copy; each over several 16 KiB chunks.
    for (name, op) in [("intact", 0u8), ("flip", 1), ("truncate", 2), ("append", 5)] {
        s.add(
            "envelope",
            &format!("sealed-{name}"),
            [1, op, 0x10, 0x80, 0x40, 0x9c, b'r', b'r'],
        );
    }

    let sealed = seal(&fx.sealing.public(), &fx.slot, &u.kfrags[0].to_bytes()).expect("sealing");
    s.add("sealed_fragment", "sealed", [&[0][..], &sealed].concat());
    let stored = fx
        .sealing
        .encrypt_at_rest(&fx.grant, &u.kfrags[0].to_bytes());
    s.add("sealed_fragment", "at-rest", [&[0][..], &stored].concat());
    s.add(
        "sealed_fragment",
        "public-key",
        [&[0][..], fx.sealing.public().to_hex().as_bytes()].concat(),
    );
    s.add(
        "sealed_fragment",
        "damaged",
        [&[1u8, 4, 40, 0][..], &u.kfrags[1].to_bytes()].concat(),
    );
}

fn node_files(s: &mut Seeds) {
    let fx = fixture();
    let identity = RootIdentity::from_root_bytes(&fx.alice.to_bytes(), &[0xa2; 32]);
    let card = identity.card();
    s.json("public_card", "signed.json", &card);
    // The first card format: a scheme number, one key, no signature.
    let old = format!(
        r#"{{"account":"{}","scheme":1,"pre_public_key":"{}"}}"#,
        card.account,
        hex::encode(fx.umbral.grantee_pk.to_bytes())
    );
    s.add("public_card", "unsigned-v1.json", old);

    let dir = std::env::temp_dir().join(format!("rr-fuzz-seeds-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = Keystore::open_with_kdf(&dir, KdfParams::insecure_for_tests()).expect("a keystore");
    store
        .create("alice", PASSPHRASE, &identity)
        .expect("a key file");
    let key_file = std::fs::read(store.key_path("alice")).expect("the key file");
    let _ = std::fs::remove_dir_all(&dir);
    s.add("keystore_key_file", "alice", key_file);
}

/// Every seed. Key files and sealed fragments draw fresh randomness (salts,
/// nonces, ephemeral keys), so their bytes differ from run to run; every
/// other seed is the same each time.
pub fn seeds() -> Vec<Seed> {
    let mut s = Seeds(Vec::new());
    let l = ledger();
    core_values(&mut s, &l);
    replica_messages(&mut s, &l);
    pre_values(&mut s);
    node_files(&mut s);
    s.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seeds_of_signed_things_verify() {
        let fx = fixture();
        let l = ledger();
        l.record_answer()
            .verify(&fx.set_info)
            .expect("record answer");
        l.grant_answer().verify(&fx.set_info).expect("grant answer");
        l.listing_answer()
            .verify(&fx.set_info)
            .expect("listing answer");
        l.certified_receipt(1)
            .verify(&fx.set_info)
            .expect("certified receipt");
        let mut s = Seeds(Vec::new());
        replica_messages(&mut s, &l);
        for seed in s.0.iter().filter(|s| s.target == "replica_message") {
            if seed.name.starts_with("wal-") {
                continue;
            }
            let m = SignedMessage::from_bytes(&seed.bytes).expect("decodes");
            if let Err(e) = m.verify(&fx.set) {
                panic!("seed {} does not verify: {e}", seed.name);
            }
        }
    }
}
