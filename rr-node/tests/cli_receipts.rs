//! Certified state through the real `rr-node` and `rr`: receipts exported
//! and checked offline (and refused once tampered with), a dev node's key
//! pinned on first use, and answers older than what `rr` saw refused.

mod cli_support;

use std::path::Path;

use cli_support::{NodeProcess, Rr};
use rr_core::{GrantInfo, GrantStatus};
use serde_json::Value;

fn str_of(v: &Value, key: &str) -> String {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("no {key} in {v}"))
        .to_string()
}

/// Alice and Bob, Alice's record, a grant to Bob that Bob used once and
/// Alice revoked, and Bob's refused retrieval after that.
struct World {
    rr: Rr,
    alice: String,
    record_id: String,
    grant_id: String,
    /// Height of the revocation's certified receipt.
    revoked_at: u64,
    /// Bob's refused retrieval, as the refusal names it.
    refused_tx: String,
}

fn world(dir: &Path, node: &NodeProcess) -> World {
    let rr = Rr::new(dir, &node.url);
    let alice = str_of(
        &rr.run(&["keys", "new", "alice", "--json"]).json(),
        "account",
    );
    rr.run(&["keys", "new", "bob"]).ok();
    std::fs::write(dir.join("lab.txt"), b"potassium 4.1 mmol/L").unwrap();
    let record_id = str_of(
        &rr.run(&["--as", "alice", "put", "lab.txt", "--json"])
            .json(),
        "record_id",
    );
    let grant_id = str_of(
        &rr.run(&[
            "--as", "alice", "grant", &record_id, "--to", "bob", "--json",
        ])
        .json(),
        "grant_id",
    );
    rr.run(&["--as", "bob", "get", &grant_id, "-o", "lab-bob.txt"])
        .ok();
    let revoked = rr
        .run(&["--as", "alice", "revoke", &grant_id, "--json"])
        .json();
    let revoked_at = revoked["certified_at"].as_u64().expect("certified_at");
    let line = rr
        .run(&["--as", "bob", "get", &grant_id, "-o", "again.txt"])
        .fails_with(&["revoked at height", "rr receipt export"]);
    let refused_tx = line
        .split("the refused call is transaction ")
        .nth(1)
        .and_then(|rest| rest.get(..64))
        .unwrap_or_else(|| panic!("no transaction id in: {line}"))
        .to_string();
    World {
        rr,
        alice,
        record_id,
        grant_id,
        revoked_at,
        refused_tx,
    }
}

/// The receipt file at `path`, as JSON.
fn load(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// `v` with the last hex digit of the string at `pointer` changed.
fn flip(v: &Value, pointer: &str) -> Value {
    let mut v = v.clone();
    let s = v
        .pointer_mut(pointer)
        .unwrap_or_else(|| panic!("no {pointer} in the receipt"));
    let text = s.as_str().expect("a hex string").to_string();
    let other = if text.ends_with('0') { '1' } else { '0' };
    *s = Value::String(format!("{}{other}", &text[..text.len() - 1]));
    v
}

/// `v` with the string at `pointer` replaced by `to`.
fn set(v: &Value, pointer: &str, to: Value) -> Value {
    let mut v = v.clone();
    *v.pointer_mut(pointer)
        .unwrap_or_else(|| panic!("no {pointer} in the receipt")) = to;
    v
}

#[test]
fn a_revoked_grant_s_receipt_verifies_offline_with_and_without_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let node = NodeProcess::start(&dir.join("data"), &dir.join("node.log"));
    let w = world(dir, &node);
    let rr = &w.rr;
    let key = rr.pinned_key(&node.url);

    // Without a key nothing is read: every read names who asks.
    rr.with_passphrase("")
        .run(&["receipt", "export", &w.grant_id, "-o", "anon.receipt.json"])
        .fails_with(&["pass --as"]);
    assert!(!dir.join("anon.receipt.json").exists());
    // The grantee (or the record's owner) exports the grant's receipt.
    let exported = rr
        .run(&[
            "--as",
            "bob",
            "receipt",
            "export",
            &w.grant_id,
            "-o",
            "grant.receipt.json",
            "--json",
        ])
        .json();
    assert_eq!(str_of(&exported, "kind"), "grant");
    assert_eq!(str_of(&exported, "id"), w.grant_id);
    let revoked = format!("was revoked at height {}", w.revoked_at);
    assert!(
        str_of(&exported, "summary").contains(&revoked),
        "{exported}"
    );
    assert!(
        str_of(&exported, "verify_with").contains(&format!("--key {key}")),
        "{exported}"
    );
    // The human form says what it proves, too.
    let human = rr.run(&[
        "--as",
        "alice",
        "receipt",
        "export",
        &w.grant_id,
        "-o",
        "grant-2.receipt.json",
    ]);
    human.ok();
    assert!(human.stdout.contains(&revoked), "{}", human.stdout);
    assert!(
        human.stdout.contains("rr receipt verify"),
        "{}",
        human.stdout
    );

    // The node is gone: the receipt still proves it. No keystore, no
    // passphrase, no node.
    node.kill();
    let offline = Rr {
        keystore: dir.join("no-keystore-here"),
        node: "http://127.0.0.1:1".into(),
        ..rr.with_passphrase("")
    };
    let run = offline.run(&["receipt", "verify", "grant.receipt.json", "--key", &key]);
    run.ok();
    let first = run.stdout.lines().next().unwrap_or_default();
    assert!(first.contains(&revoked), "{}", run.stdout);
    assert!(first.contains("certified by replica 0"), "{}", run.stdout);
    assert!(
        run.stdout.contains(&format!("grant: {}", w.grant_id)),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(&format!("owner: {}", w.alice)),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("valid: every certificate and proof"),
        "{}",
        run.stdout
    );
    let v = offline
        .run(&[
            "receipt",
            "verify",
            "grant.receipt.json",
            "--key",
            &key,
            "--json",
        ])
        .json();
    assert_eq!(v["valid"], true);
    assert_eq!(v["trusted_set"], true);
    assert_eq!(v["certified_by"], serde_json::json!([0]));
    assert!(v["height"].as_u64().unwrap() > w.revoked_at, "{v}");
    assert!(!dir.join("no-keystore-here").exists());

    // Without a key: valid, and it says that this proves only that the
    // keys the file names signed it.
    let run = offline.run(&["receipt", "verify", "grant.receipt.json"]);
    run.ok();
    assert!(run.stdout.contains(&revoked), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("proves only that those keys signed it, not that they are your node's"),
        "{}",
        run.stdout
    );
    let v = offline
        .run(&["receipt", "verify", "grant.receipt.json", "--json"])
        .json();
    assert_eq!(v["trusted_set"], false);
    assert!(v["note"].as_str().unwrap().contains(&key), "{v}");

    // Another node's key: refused.
    offline
        .run(&["receipt", "verify", "grant.receipt.json", "--key", &w.alice])
        .fails_with(&["does not hold", "not the trusted one"]);
    // Not a key, not a file, not a receipt.
    offline
        .run(&["receipt", "verify", "grant.receipt.json", "--key", "abc"])
        .fails_with(&["64 hex digits"]);
    offline
        .run(&["receipt", "verify", "missing.json"])
        .fails_with(&["cannot read receipt missing.json"]);
    offline
        .run(&["receipt", "verify", "lab.txt"])
        .fails_with(&["not a receipt file"]);
}

#[test]
fn every_tampered_field_of_a_receipt_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let node = NodeProcess::start(&dir.join("data"), &dir.join("node.log"));
    let w = world(dir, &node);
    let rr = &w.rr;
    let key = rr.pinned_key(&node.url);
    rr.run(&[
        "--as",
        "alice",
        "receipt",
        "export",
        &w.grant_id,
        "-o",
        "grant.json",
    ])
    .ok();
    // Bob signed the refused call: its receipt is his to read.
    rr.run(&[
        "--as",
        "bob",
        "receipt",
        "export",
        &w.refused_tx,
        "-o",
        "tx.json",
    ])
    .ok();
    rr.run(&[
        "--as",
        "alice",
        "receipt",
        "export",
        &w.record_id,
        "-o",
        "record.json",
    ])
    .ok();
    node.stop();

    // The refused retrieval's receipt says so.
    let tx = rr
        .run(&["receipt", "verify", "tx.json", "--key", &key, "--json"])
        .json();
    assert_eq!(str_of(&tx, "kind"), "transaction");
    assert!(
        str_of(&tx, "summary").contains("was refused at height"),
        "{tx}"
    );

    let grant = load(&dir.join("grant.json"));
    let receipt = load(&dir.join("tx.json"));
    let record = load(&dir.join("record.json"));

    // The grant's value, decoded and re-encoded as still active.
    let value_hex = str_of(&grant["proof"]["state"]["entries"][0], "value");
    let mut info: GrantInfo =
        rr_core::codec::decode("grant", &hex::decode(&value_hex).unwrap(), 1 << 20).unwrap();
    assert!(matches!(info.status, GrantStatus::Revoked { .. }));
    info.status = GrantStatus::Active;
    let active = hex::encode(rr_core::codec::encode(&info));
    // The refusal turned into an allowed retrieval.
    let allowed = serde_json::json!({
        "Ok": { "Retrieved": { "record": w.record_id, "grant": w.grant_id } }
    });
    // The record's trail without its last entry (the refused retrieval).
    let mut shortened = record.clone();
    shortened["proof"]["state"]["entries"]
        .as_array_mut()
        .unwrap()
        .pop();

    let cases: Vec<(&str, Value)> = vec![
        (
            "the header's state root",
            flip(&grant, "/proof/state/certificate/header/state_root"),
        ),
        (
            "the header's height",
            set(
                &grant,
                "/proof/state/certificate/header/height",
                Value::from(
                    grant["proof"]["state"]["certificate"]["header"]["height"]
                        .as_u64()
                        .unwrap()
                        + 1,
                ),
            ),
        ),
        (
            "a signature",
            flip(&grant, "/proof/state/certificate/signatures/0/signature"),
        ),
        (
            "a proof sibling",
            flip(&grant, "/proof/state/entries/0/proof/siblings/0"),
        ),
        (
            "the grant's status (revoked made active)",
            set(
                &grant,
                "/proof/state/entries/0/value",
                Value::String(active),
            ),
        ),
        (
            "the replica set's key",
            set(
                &grant,
                "/replica_set/keys/0",
                Value::String(w.alice.clone()),
            ),
        ),
        (
            "a receipt's outcome (refused made allowed)",
            set(&receipt, "/proof/receipt/receipt/outcome", allowed),
        ),
        (
            "a refusal's message",
            set(
                &receipt,
                "/proof/receipt/receipt/outcome/Refused/message",
                Value::String("nothing happened".into()),
            ),
        ),
        (
            "a receipt's transaction",
            flip(&receipt, "/proof/receipt/receipt/tx"),
        ),
        (
            "an audit entry",
            flip(&record, "/proof/state/entries/1/value"),
        ),
        ("an audit trail cut short", shortened),
    ];
    for (what, tampered) in cases {
        let path = dir.join("tampered.json");
        let bytes = serde_json::to_vec_pretty(&tampered).unwrap();
        std::fs::write(&path, &bytes).unwrap();
        for trusted in [vec!["--key", key.as_str()], vec![]] {
            let mut args = vec!["receipt", "verify", "tampered.json"];
            args.extend(&trusted);
            let run = rr.with_passphrase("").run(&args);
            let line = run.fails_with(&["receipt tampered.json does not hold"]);
            assert_eq!(run.code, 1, "{what}: {line}");
            assert!(
                line.contains("nothing in it can be relied on"),
                "{what}: {line}"
            );
        }
        // Checking changes nothing.
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "{what}");
    }
    // The untouched files still verify.
    for file in ["grant.json", "tx.json", "record.json"] {
        rr.run(&["receipt", "verify", file, "--key", &key]).ok();
    }
}

#[test]
fn a_record_s_audit_trail_is_exported_by_its_owner_only() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let node = NodeProcess::start(&dir.join("data"), &dir.join("node.log"));
    let w = world(dir, &node);
    let rr = &w.rr;
    let key = rr.pinned_key(&node.url);

    let exported = rr
        .run(&[
            "--as",
            "alice",
            "receipt",
            "export",
            &w.record_id,
            "-o",
            "trail.json",
            "--json",
        ])
        .json();
    assert_eq!(str_of(&exported, "kind"), "record");
    assert!(
        str_of(&exported, "summary").contains("has 5 audit entries"),
        "{exported}"
    );

    // Bob holds a grant to the record, but the trail is Alice's to show;
    // without a key, rr says whose key it takes. Neither writes a file.
    rr.run(&[
        "--as",
        "bob",
        "receipt",
        "export",
        &w.record_id,
        "-o",
        "bob-trail.json",
    ])
    .fails_with(&[
        "does not own record",
        "only its owner can export its audit trail",
        "--as",
    ]);
    rr.run(&["receipt", "export", &w.record_id, "-o", "bob-trail.json"])
        .fails_with(&["no key to act as", "pass --as"]);
    assert!(!dir.join("bob-trail.json").exists());
    // An id that is nothing on the ledger.
    rr.run(&[
        "--as",
        "alice",
        "receipt",
        "export",
        &"ab".repeat(32),
        "-o",
        "nothing.json",
    ])
    .fails_with(&["no grant, no record and no transaction with this id"]);
    // Alice did not sign Bob's refused call: to her it is nothing either,
    // worded as for an id that does not exist.
    rr.run(&[
        "--as",
        "alice",
        "receipt",
        "export",
        &w.refused_tx,
        "-o",
        "not-hers.json",
    ])
    .fails_with(&["no grant, no record and no transaction with this id"]);
    assert!(!dir.join("not-hers.json").exists());
    assert!(!dir.join("nothing.json").exists());
    node.stop();

    // Offline, the whole trail: every access, the refused one included.
    let v = rr
        .with_passphrase("")
        .run(&["receipt", "verify", "trail.json", "--key", &key, "--json"])
        .json();
    assert!(
        str_of(&v, "summary").contains("this is its whole trail"),
        "{v}"
    );
    let details: Vec<String> = v["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_string())
        .collect();
    let trail: Vec<&String> = details.iter().filter(|d| d.starts_with('#')).collect();
    assert_eq!(trail.len(), 5, "{details:?}");
    for (line, action) in trail
        .iter()
        .zip(["register", "grant", "retrieve", "revoke", "retrieve"])
    {
        assert!(line.contains(&format!(" {action} ")), "{line}");
    }
    assert!(trail[4].contains("REFUSED (grant_revoked)"), "{}", trail[4]);
}

#[test]
fn a_dev_node_s_key_is_pinned_on_first_use() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let node = NodeProcess::start(&dir.join("data-1"), &dir.join("node-1.log"));
    let url = node.url.clone();
    let addr = node.addr();
    let rr = Rr::new(dir, &url);
    rr.run(&["keys", "new", "alice"]).ok();

    // First use: pinned, and said so on stderr, once.
    let first = rr.run(&["--as", "alice", "ls", "--json"]);
    first.json();
    let old_key = rr.pinned_key(&url);
    assert!(
        first.stderr.contains(&format!(
            "note: first use of node {url}: pinned its key {old_key}"
        )),
        "{}",
        first.stderr
    );
    let again = rr.run(&["--as", "alice", "ls", "--json"]);
    again.json();
    assert_eq!(again.stderr, "", "said again: {}", again.stderr);
    let list = rr.run(&["trust", "list", "--json"]).json();
    assert_eq!(list["nodes"][0]["url"], url.as_str());
    assert_eq!(list["nodes"][0]["key"], old_key.as_str());

    // Another node (a fresh data directory: a new key) on the same address.
    node.stop();
    let node = NodeProcess::start_on(&dir.join("data-2"), &dir.join("node-2.log"), &addr);
    assert_eq!(node.url, url);
    let line = rr
        .run(&["--as", "alice", "ls"])
        .fails_with(&[&old_key, &format!("rr trust forget {url}")]);
    // Nothing changed: the old key is still the one pinned.
    assert_eq!(rr.pinned_key(&url), old_key);
    rr.run(&["--as", "alice", "ls"])
        .fails_with(&["it presents key"]);

    // Forgetting the pin lets the new node through, pinned anew.
    rr.run(&["trust", "forget", &format!("{url}/")]).ok();
    let run = rr.run(&["--as", "alice", "ls", "--json"]);
    run.json();
    let new_key = rr.pinned_key(&url);
    assert_ne!(new_key, old_key);
    assert!(line.contains(&new_key), "the refusal named {line}");
    assert!(run.stderr.contains(&new_key), "{}", run.stderr);
    rr.run(&["trust", "forget", "http://127.0.0.1:1"])
        .fails_with(&["no key is pinned for it", &url]);

    // A URL that is not a node's: nothing pinned.
    rr.run(&["--node", "http://127.0.0.1:1", "--as", "alice", "ls"])
        .fails_with(&["cannot connect"]);
    let list = rr.run(&["trust", "list", "--json"]).json();
    assert_eq!(list["nodes"].as_array().unwrap().len(), 1, "{list}");
    node.stop();
}

/// Copies directory `from` to `to`, recursively.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn seen_heights(rr: &Rr) -> Value {
    load(&rr.keystore.join("seen.json"))
}

#[test]
fn answers_older_than_what_rr_saw_are_refused_across_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let data = dir.join("data");
    let node = NodeProcess::start(&data, &dir.join("node-1.log"));
    let url = node.url.clone();
    let addr = node.addr();
    let w = world(dir, &node);
    let rr = &w.rr;

    // rr keeps the newest certified height it saw of the node's replica set.
    let seen = seen_heights(rr);
    let map = seen.as_object().expect("a map");
    assert_eq!(map.len(), 1, "{seen}");
    let (digest, height) = map.iter().next().unwrap();
    let height = height.as_u64().unwrap();
    assert!(height > w.revoked_at, "{seen}");

    // A seen.json ahead of the node: every answer is stale, and refused.
    let ahead = serde_json::json!({ digest.clone(): height + 1000 });
    std::fs::write(
        rr.keystore.join("seen.json"),
        serde_json::to_vec(&ahead).unwrap(),
    )
    .unwrap();
    rr.run(&["--as", "alice", "ls"]).fails_with(&[
        "refused a stale answer",
        &format!("older than height {}", height + 1000),
        "seen.json",
        &format!("rr trust forget {url}"),
    ]);
    rr.run(&[
        "--as",
        "alice",
        "receipt",
        "export",
        &w.grant_id,
        "-o",
        "stale.json",
    ])
    .fails_with(&["refused a stale answer"]);
    assert!(!dir.join("stale.json").exists());
    // A failure does not lower what rr saw.
    assert_eq!(seen_heights(rr), ahead);
    std::fs::write(
        rr.keystore.join("seen.json"),
        serde_json::to_vec(&seen).unwrap(),
    )
    .unwrap();

    // The node's ledger rolled back: a copy of its data directory, restored
    // behind the same key and address after the node went on without it.
    node.stop();
    let old = dir.join("data-old");
    copy_dir(&data, &old);
    let node = NodeProcess::start_on(&data, &dir.join("node-2.log"), &addr);
    let before = rr.run(&["--as", "alice", "ls", "--json"]).json();
    std::fs::write(dir.join("more.txt"), b"more").unwrap();
    rr.run(&["--as", "alice", "put", "more.txt"]).ok();
    node.stop();
    let node = NodeProcess::start_on(&old, &dir.join("node-3.log"), &addr);
    rr.run(&["--as", "alice", "ls"])
        .fails_with(&["refused a stale answer", "older than height"]);
    // Rolled back on purpose: forgetting the node makes rr take it again.
    rr.run(&["trust", "forget", &url]).ok();
    let ls = rr.run(&["--as", "alice", "ls", "--json"]).json();
    assert_eq!(ls, before);
    node.stop();
}
