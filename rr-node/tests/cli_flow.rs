//! The real `rr-node` and the real `rr`, as a patient and a doctor would use
//! them: put, grant, get, revoke, get again, audit, restart, get; and bad
//! input through the CLI, each with one clear line and the state unchanged.

mod cli_support;

use std::path::Path;

use cli_support::{entries, files_under, sample, NodeProcess, Rr};
use serde_json::Value;

fn actions(audit: &Value) -> Vec<(String, String)> {
    audit["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_string(),
                e["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, o)| (a.to_string(), o.to_string()))
        .collect()
}

fn str_of(v: &Value, key: &str) -> String {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("no {key} in {v}"))
        .to_string()
}

/// Keys for alice and bob, bob's card as a file, and alice's record put.
struct World {
    rr: Rr,
    record: Vec<u8>,
    record_id: String,
    alice: String,
    bob: String,
}

fn world(dir: &Path, node: &NodeProcess) -> World {
    let rr = Rr::new(dir, &node.url);
    let alice = str_of(
        &rr.run(&["keys", "new", "alice", "--json"]).json(),
        "account",
    );
    let bob_card = rr.run(&["keys", "show", "bob", "--json"]);
    assert_ne!(bob_card.code, 0, "bob has no key yet");
    let bob = str_of(&rr.run(&["keys", "new", "bob", "--json"]).json(), "account");
    let card = rr.run(&["keys", "show", "bob", "--json"]);
    card.ok();
    std::fs::write(dir.join("bob.card.json"), &card.stdout).unwrap();

    let record = sample(300_000, 7);
    std::fs::write(dir.join("blood-panel.pdf"), &record).unwrap();
    let put = rr
        .run(&["--as", "alice", "put", "blood-panel.pdf", "--json"])
        .json();
    let record_id = str_of(&put, "record_id");
    assert!(str_of(&put, "cid").starts_with("bafkrei"), "{put}");
    // The registration's transaction and the height its receipt is
    // certified at, to export it.
    assert_eq!(str_of(&put, "tx").len(), 64, "{put}");
    assert_eq!(put["certified_at"], 1, "{put}");
    World {
        rr,
        record,
        record_id,
        alice,
        bob,
    }
}

#[test]
fn put_grant_get_revoke_audit_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let data = dir.join("data");
    let node = NodeProcess::start(&data, &dir.join("node-1.log"));
    let w = world(dir, &node);
    let rr = &w.rr;

    // Alice grants Bob, from his card file, for treatment, for 30 days.
    let grant = rr
        .run(&[
            "--as",
            "alice",
            "grant",
            &w.record_id,
            "--to",
            "bob.card.json",
            "--expires",
            "30d",
            "--purpose",
            "treatment",
            "--json",
        ])
        .json();
    let grant_id = str_of(&grant, "grant_id");
    assert_eq!(str_of(&grant, "grantee"), w.bob);
    assert!(grant["expires_at"].is_string(), "{grant}");
    assert_eq!(grant["certified_at"], 2, "{grant}");
    let grant_tx = str_of(&grant, "tx");
    assert_ne!(grant_tx, str_of(&grant, "grant_id"));

    // Bob reads it with the grant id, and with the record id.
    rr.run(&["--as", "bob", "get", &grant_id, "-o", "bob-1.pdf"])
        .ok();
    assert_eq!(std::fs::read(dir.join("bob-1.pdf")).unwrap(), w.record);
    let got = rr
        .run(&[
            "--as",
            "bob",
            "get",
            &w.record_id,
            "-o",
            "bob-2.pdf",
            "--json",
        ])
        .json();
    assert_eq!(got["bytes"], w.record.len());
    assert_eq!(str_of(&got, "grant_id"), grant_id);
    // Bob's retrieval is on the ledger, certified by the node (replica 0 of 1).
    assert_eq!(str_of(&got, "tx").len(), 64, "{got}");
    assert_eq!(got["certified_at"], 4, "{got}");
    assert_eq!(got["certified_by"], serde_json::json!([0]), "{got}");
    assert_eq!(std::fs::read(dir.join("bob-2.pdf")).unwrap(), w.record);

    // Both see it in their listings.
    let ls = rr.run(&["--as", "alice", "ls", "--json"]).json();
    assert_eq!(str_of(&ls, "account"), w.alice);
    assert_eq!(str_of(&ls["records"][0], "record_id"), w.record_id);
    assert_eq!(str_of(&ls["records"][0]["grants"][0], "status"), "active");
    let ls = rr.run(&["--as", "bob", "ls", "--json"]).json();
    assert_eq!(ls["records"].as_array().unwrap().len(), 0);
    assert_eq!(str_of(&ls["grants"][0], "grant_id"), grant_id);

    // Alice revokes; Bob is refused and told why (a certified refusal, whose
    // receipt he can keep), and no file appears.
    let revoked = rr
        .run(&["--as", "alice", "revoke", &grant_id, "--json"])
        .json();
    assert_eq!(revoked["certified_at"], 5, "{revoked}");
    assert_eq!(str_of(&revoked, "tx").len(), 64, "{revoked}");
    let line = rr
        .run(&["--as", "bob", "get", &grant_id, "-o", "bob-3.pdf"])
        .fails_with(&[
            "revoked at height 5",
            "ask the record's owner for a new grant",
            "rr receipt export",
        ]);
    assert!(line.contains(&grant_id), "{line}");
    assert!(!dir.join("bob-3.pdf").exists());
    rr.run(&["--as", "bob", "get", &w.record_id, "-o", "bob-4.pdf"])
        .fails_with(&["revoked"]);
    assert!(!dir.join("bob-4.pdf").exists());
    assert!(
        !entries(dir).iter().any(|n| n.starts_with(".rr-partial")),
        "{:?}",
        entries(dir)
    );

    // The audit trail shows all of it.
    let audit = rr
        .run(&["--as", "alice", "audit", &w.record_id, "--json"])
        .json();
    let expected = pairs(&[
        ("register", "ok"),
        ("grant", "ok"),
        ("retrieve", "ok"),
        ("retrieve", "ok"),
        ("revoke", "ok"),
        ("retrieve", "grant_revoked"),
        ("retrieve", "grant_revoked"),
    ]);
    assert_eq!(actions(&audit), expected);
    let entries_json = audit["entries"].as_array().unwrap();
    for (i, e) in entries_json.iter().enumerate() {
        assert_eq!(e["seq"], i);
        assert!(e["height"].as_u64().unwrap() >= 1);
        let time = e["time"].as_str().unwrap();
        humantime::parse_rfc3339(time).unwrap_or_else(|_| panic!("not RFC 3339: {time}"));
    }
    assert_eq!(str_of(&entries_json[0], "actor"), w.alice);
    assert_eq!(str_of(&entries_json[2], "actor"), w.bob);
    assert_eq!(str_of(&entries_json[2], "grant"), grant_id);
    assert_eq!(str_of(&entries_json[2], "purpose"), "treatment");
    assert!(entries_json[0]["grant"].is_null());
    // Bob may not read Alice's audit trail.
    rr.run(&["--as", "bob", "audit", &w.record_id])
        .fails_with(&["does not own record"]);

    // Restart the node: everything is still there.
    node.stop();
    let node = NodeProcess::start(&data, &dir.join("node-2.log"));
    let rr = Rr::new(dir, &node.url);
    rr.run(&["--as", "alice", "get", &w.record_id, "-o", "alice.pdf"])
        .ok();
    assert_eq!(std::fs::read(dir.join("alice.pdf")).unwrap(), w.record);
    rr.run(&["--as", "bob", "get", &grant_id, "-o", "bob-5.pdf"])
        .fails_with(&["revoked"]);
    let audit = rr
        .run(&["--as", "alice", "audit", &w.record_id, "--json"])
        .json();
    let mut expected = expected;
    expected.push(("retrieve".into(), "grant_revoked".into()));
    assert_eq!(actions(&audit), expected);
    node.stop();
}

#[test]
fn bad_input_is_refused_clearly_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let data = dir.join("data");
    let node = NodeProcess::start(&data, &dir.join("node.log"));
    let w = world(dir, &node);
    let rr = &w.rr;
    let grant_id = str_of(
        &rr.run(&[
            "--as",
            "alice",
            "grant",
            &w.record_id,
            "--to",
            "bob",
            "--json",
        ])
        .json(),
        "grant_id",
    );
    let audit_len = |rr: &Rr| {
        rr.run(&["--as", "alice", "audit", &w.record_id, "--json"])
            .json()["entries"]
            .as_array()
            .unwrap()
            .len()
    };
    let before = audit_len(rr);

    // Wrong passphrase: refused before anything reaches the node.
    rr.with_passphrase("not it")
        .run(&["--as", "alice", "revoke", &grant_id])
        .fails_with(&["wrong passphrase for key alice"]);
    assert_eq!(audit_len(rr), before);

    // Unknown ids.
    let unknown = "ab".repeat(32);
    rr.run(&["--as", "bob", "get", &unknown, "-o", "nothing.pdf"])
        .fails_with(&["no record and no grant with this id", "rr --as NAME ls"]);
    assert!(!dir.join("nothing.pdf").exists());
    rr.run(&["--as", "alice", "audit", &unknown])
        .fails_with(&["no record", "check the id"]);
    rr.run(&["--as", "alice", "revoke", &unknown])
        .fails_with(&["no grant"]);
    rr.run(&["--as", "alice", "grant", &unknown, "--to", "bob"])
        .fails_with(&["no record"]);

    // A grant to a bare account id: the card is needed.
    rr.run(&[
        "--as",
        "alice",
        "grant",
        &w.record_id,
        "--to",
        &"cd".repeat(32),
    ])
    .fails_with(&["account id alone is not enough"]);
    // Bob cannot grant Alice's record to himself.
    rr.run(&["--as", "bob", "grant", &w.record_id, "--to", "bob"])
        .fails_with(&["does not own record"]);

    // Bob tries to revoke Alice's grant: refused, and the grant still works.
    rr.run(&["--as", "bob", "revoke", &grant_id])
        .fails_with(&["does not own record", "only its owner can revoke"]);
    rr.run(&["--as", "bob", "get", &grant_id, "-o", "still.pdf"])
        .ok();
    assert_eq!(std::fs::read(dir.join("still.pdf")).unwrap(), w.record);
    let ls = rr.run(&["--as", "alice", "ls", "--json"]).json();
    assert_eq!(str_of(&ls["records"][0]["grants"][0], "status"), "active");

    // A tampered blob on disk: the get fails with an integrity error and
    // writes no output file.
    let cid = str_of(&ls["records"][0], "cid");
    let blob = files_under(&data)
        .into_iter()
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy() == cid))
        .unwrap_or_else(|| panic!("blob {cid} not under {}", data.display()));
    let mut bytes = std::fs::read(&blob).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&blob, &bytes).unwrap();
    for (who, id, out) in [
        ("alice", &w.record_id, "tampered-alice.pdf"),
        ("bob", &grant_id, "tampered-bob.pdf"),
    ] {
        rr.run(&["--as", who, "get", id, "-o", out])
            .fails_with(&["integrity", "no output file was written"]);
        assert!(!dir.join(out).exists(), "{out} was written");
    }
    // A larger record tampered near its start: the client's decryption
    // catches it while the node is still streaming.
    let scan = sample(3 * 1024 * 1024 / 2, 11);
    std::fs::write(dir.join("scan.dcm"), &scan).unwrap();
    let put = rr
        .run(&["--as", "alice", "put", "scan.dcm", "--json"])
        .json();
    let cid = str_of(&put, "cid");
    let blob = files_under(&data)
        .into_iter()
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy() == cid))
        .unwrap();
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes[100] ^= 0x01;
    std::fs::write(&blob, &bytes).unwrap();
    rr.run(&[
        "--as",
        "alice",
        "get",
        &str_of(&put, "record_id"),
        "-o",
        "scan-out.dcm",
    ])
    .fails_with(&["integrity", "no output file was written"]);
    assert!(!dir.join("scan-out.dcm").exists());
    assert!(
        !entries(dir).iter().any(|n| n.starts_with(".rr-partial")),
        "{:?}",
        entries(dir)
    );
    node.stop();
}
