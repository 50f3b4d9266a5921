//! A scheme per record, through the real binaries: `rr-node dev --scheme
//! recrypt` makes recrypt the default of new records, `rr` follows each
//! record's scheme, and wrong scheme names and cards without the record's
//! scheme are refused with one clear line and nothing changed.

mod cli_support;

use std::path::Path;
use std::process::{Command, Stdio};

use cli_support::{entries, sample, NodeProcess, Rr, PASSPHRASE};
use rr_node::keystore::Keystore;
use rr_pre::Umbral;
use serde_json::Value;

fn str_of(v: &Value, key: &str) -> String {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("no {key} in {v}"))
        .to_string()
}

fn actions(audit: &Value) -> Vec<(String, String)> {
    audit["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| (str_of(e, "action"), str_of(e, "outcome")))
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, o)| (a.to_string(), o.to_string()))
        .collect()
}

/// Alice's and Bob's keys; Bob's card in `bob.card.json`.
fn keys(rr: &Rr, dir: &Path) -> (String, String) {
    let alice = str_of(
        &rr.run(&["keys", "new", "alice", "--json"]).json(),
        "account",
    );
    let bob = str_of(&rr.run(&["keys", "new", "bob", "--json"]).json(), "account");
    let card = rr.run(&["keys", "show", "bob", "--json"]);
    card.ok();
    std::fs::write(dir.join("bob.card.json"), &card.stdout).unwrap();
    (alice, bob)
}

fn put(rr: &Rr, file: &str, extra: &[&str]) -> Value {
    let mut args = vec!["--as", "alice", "put", file, "--json"];
    args.extend_from_slice(extra);
    rr.run(&args).json()
}

fn grant(rr: &Rr, record: &str, to: &str) -> Value {
    rr.run(&[
        "--as",
        "alice",
        "grant",
        record,
        "--to",
        to,
        "--purpose",
        "treatment",
        "--json",
    ])
    .json()
}

#[test]
fn recrypt_node_put_grant_get_revoke_audit() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let node = NodeProcess::start_with(
        &dir.join("data"),
        &dir.join("node.log"),
        &["--scheme", "recrypt"],
        &[],
    );
    let rr = Rr::new(dir, &node.url);
    let (alice, bob) = keys(&rr, dir);
    let card: Value = serde_json::from_slice(&std::fs::read(dir.join("bob.card.json")).unwrap())
        .expect("bob's card is JSON");
    assert_eq!(str_of(&card, "account"), bob);
    assert!(card["pre_public_keys"]["recrypt"].is_string(), "{card}");

    // A record put without --scheme takes the node's default: recrypt.
    let record = sample(200_000, 21);
    std::fs::write(dir.join("mri.dcm"), &record).unwrap();
    let put_out = put(&rr, "mri.dcm", &[]);
    assert_eq!(str_of(&put_out, "scheme"), "recrypt");
    let record_id = str_of(&put_out, "record_id");
    let ls = rr.run(&["--as", "alice", "ls", "--json"]).json();
    assert_eq!(str_of(&ls, "account"), alice);
    assert_eq!(str_of(&ls["records"][0], "record_id"), record_id);
    assert_eq!(str_of(&ls["records"][0], "scheme"), "recrypt");

    // Alice grants Bob from his card; Bob reads it, by grant and by record.
    let granted = grant(&rr, &record_id, "bob.card.json");
    let grant_id = str_of(&granted, "grant_id");
    assert_eq!(str_of(&granted, "scheme"), "recrypt");
    assert_eq!(str_of(&granted, "grantee"), bob);
    let got = rr
        .run(&["--as", "bob", "get", &grant_id, "-o", "bob-1.dcm", "--json"])
        .json();
    assert_eq!(str_of(&got, "scheme"), "recrypt");
    assert_eq!(std::fs::read(dir.join("bob-1.dcm")).unwrap(), record);
    rr.run(&["--as", "bob", "get", &record_id, "-o", "bob-2.dcm"])
        .ok();
    assert_eq!(std::fs::read(dir.join("bob-2.dcm")).unwrap(), record);
    // Alice reads her own recrypt record without a grant.
    rr.run(&["--as", "alice", "get", &record_id, "-o", "alice.dcm"])
        .ok();
    assert_eq!(std::fs::read(dir.join("alice.dcm")).unwrap(), record);

    // Alice revokes; Bob is refused, told why, and no file appears.
    rr.run(&["--as", "alice", "revoke", &grant_id]).ok();
    let line = rr
        .run(&["--as", "bob", "get", &grant_id, "-o", "bob-3.dcm"])
        .fails_with(&[
            "revoked at height",
            "ask the record's owner for a new grant",
        ]);
    assert!(line.contains(&grant_id), "{line}");
    assert!(!dir.join("bob-3.dcm").exists());
    assert!(
        !entries(dir).iter().any(|n| n.starts_with(".rr-partial")),
        "{:?}",
        entries(dir)
    );

    let audit = rr
        .run(&["--as", "alice", "audit", &record_id, "--json"])
        .json();
    assert_eq!(
        actions(&audit),
        pairs(&[
            ("register", "ok"),
            ("grant", "ok"),
            ("retrieve", "ok"),
            ("retrieve", "ok"),
            ("revoke", "ok"),
            ("retrieve", "grant_revoked"),
        ])
    );
    assert_eq!(str_of(&audit["entries"][2], "actor"), bob);

    // `--scheme umbral` on this recrypt-default node: an umbral record,
    // granted and read through the same commands.
    let note = b"umbral on a recrypt node".to_vec();
    std::fs::write(dir.join("note.txt"), &note).unwrap();
    let umbral_put = put(&rr, "note.txt", &["--scheme", "umbral"]);
    assert_eq!(str_of(&umbral_put, "scheme"), "umbral");
    let umbral_id = str_of(&umbral_put, "record_id");
    let umbral_grant = str_of(&grant(&rr, &umbral_id, "bob"), "grant_id");
    rr.run(&["--as", "bob", "get", &umbral_grant, "-o", "note-bob.txt"])
        .ok();
    assert_eq!(std::fs::read(dir.join("note-bob.txt")).unwrap(), note);

    // `rr ls` shows both records with their schemes.
    let ls = rr.run(&["--as", "alice", "ls", "--json"]).json();
    let mut schemes: Vec<(String, String)> = ls["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (str_of(r, "record_id"), str_of(r, "scheme")))
        .collect();
    schemes.sort();
    let mut expected = vec![
        (record_id.clone(), "recrypt".to_string()),
        (umbral_id.clone(), "umbral".to_string()),
    ];
    expected.sort();
    assert_eq!(schemes, expected);
    let human = rr.run(&["--as", "alice", "ls"]);
    human.ok();
    assert!(
        human
            .stdout
            .lines()
            .any(|l| l.contains(&record_id) && l.contains("recrypt")),
        "{}",
        human.stdout
    );
    node.stop();
}

#[test]
fn wrong_schemes_and_cards_are_refused_and_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let node = NodeProcess::start_with(
        &dir.join("data"),
        &dir.join("node.log"),
        &["--scheme", "recrypt"],
        &[],
    );
    let rr = Rr::new(dir, &node.url);
    keys(&rr, dir);
    std::fs::write(dir.join("lab.txt"), b"lab results").unwrap();
    let record_id = str_of(&put(&rr, "lab.txt", &[]), "record_id");

    // An unknown --scheme: one line, exit 2, nothing registered.
    let run = rr.run(&["--as", "alice", "put", "lab.txt", "--scheme", "nope"]);
    run.fails_with(&[
        "invalid command line",
        "nope",
        "unknown scheme",
        "umbral, recrypt",
    ]);
    assert_eq!(run.code, 2);
    let ls = rr.run(&["--as", "alice", "ls", "--json"]).json();
    assert_eq!(ls["records"].as_array().unwrap().len(), 1);

    // Bob's card, hand-edited to drop its recrypt key: Bob's signature no
    // longer holds, so it is refused before the passphrase and the network.
    let mut card: Value =
        serde_json::from_slice(&std::fs::read(dir.join("bob.card.json")).unwrap()).unwrap();
    card["pre_public_keys"]
        .as_object_mut()
        .unwrap()
        .remove("recrypt");
    std::fs::write(
        dir.join("bob-edited.json"),
        serde_json::to_vec_pretty(&card).unwrap(),
    )
    .unwrap();
    rr.with_passphrase("not it")
        .run(&[
            "--as",
            "alice",
            "grant",
            &record_id,
            "--to",
            "bob-edited.json",
        ])
        .fails_with(&[
            "cannot grant to bob-edited.json",
            "not signed by that account, or was changed after it was signed",
        ]);
    // A card Bob signed with his umbral key only (as a key made by an older
    // rr has): granting the recrypt record to it is refused before anything
    // reaches the ledger.
    let bob_key = Keystore::open(dir.join("keys"))
        .unwrap()
        .load("bob", PASSPHRASE)
        .unwrap();
    let umbral_only = bob_key.for_scheme(&Umbral).unwrap().card(&Umbral);
    std::fs::write(
        dir.join("bob-umbral-only.json"),
        serde_json::to_vec_pretty(&umbral_only).unwrap(),
    )
    .unwrap();
    let audit_before = rr
        .run(&["--as", "alice", "audit", &record_id, "--json"])
        .json();
    let line = rr
        .run(&[
            "--as",
            "alice",
            "grant",
            &record_id,
            "--to",
            "bob-umbral-only.json",
        ])
        .fails_with(&[
            "has no recrypt key",
            "it has keys for umbral",
            "rr keys show",
            "nothing was granted",
        ]);
    assert!(line.contains(&record_id), "{line}");
    let audit_after = rr
        .run(&["--as", "alice", "audit", &record_id, "--json"])
        .json();
    assert_eq!(audit_after, audit_before);
    assert_eq!(actions(&audit_after), pairs(&[("register", "ok")]));
    let ls = rr.run(&["--as", "alice", "ls", "--json"]).json();
    assert_eq!(ls["records"][0]["grants"].as_array().unwrap().len(), 0);
    let ls = rr.run(&["--as", "bob", "ls", "--json"]).json();
    assert_eq!(ls["grants"].as_array().unwrap().len(), 0);

    // The same card still works for an umbral record.
    let umbral_id = str_of(&put(&rr, "lab.txt", &["--scheme", "umbral"]), "record_id");
    let g = str_of(&grant(&rr, &umbral_id, "bob-umbral-only.json"), "grant_id");
    rr.run(&["--as", "bob", "get", &g, "-o", "lab-bob.txt"])
        .ok();
    assert_eq!(
        std::fs::read(dir.join("lab-bob.txt")).unwrap(),
        b"lab results"
    );
    node.stop();
}

fn rr_node_dev(data_dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rr-node"));
    for (k, _) in std::env::vars() {
        if k.starts_with("RR_NODE_") {
            c.env_remove(k);
        }
    }
    c.args(["dev", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .stdin(Stdio::null());
    c
}

#[test]
fn rr_node_refuses_an_unknown_scheme_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let file = tmp.path().join("node.toml");
    std::fs::write(&file, "scheme = \"pre-2000\"\n").unwrap();
    let mut flag = rr_node_dev(&data);
    flag.args(["--scheme", "nope"]);
    let mut env = rr_node_dev(&data);
    env.env("RR_NODE_SCHEME", "nope");
    let mut config = rr_node_dev(&data);
    config.arg("--config").arg(&file);
    for (mut cmd, name) in [(flag, "nope"), (env, "nope"), (config, "pre-2000")] {
        let out = cmd.output().unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "one line expected: {err}");
        for needle in [
            &format!("unknown scheme \"{name}\""),
            "this rr-node has umbral, recrypt",
            "RR_NODE_SCHEME",
        ] {
            assert!(err.contains(needle), "{needle:?} not in {err}");
        }
    }
    assert!(
        !data.exists(),
        "a refused setting created the data directory"
    );
}

#[test]
fn the_default_scheme_comes_from_file_then_environment_then_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let file = dir.join("node.toml");
    std::fs::write(&file, "scheme = \"recrypt\"\n").unwrap();
    let file_arg = file.to_str().unwrap();
    let rr_keys = Rr::new(dir, "http://127.0.0.1:1");
    rr_keys.run(&["keys", "new", "alice"]).ok();
    std::fs::write(dir.join("x.txt"), b"x").unwrap();
    for (i, (args, envs, expected)) in [
        (vec![], vec![], "umbral"),
        (vec!["--config", file_arg], vec![], "recrypt"),
        (
            vec!["--config", file_arg],
            vec![("RR_NODE_SCHEME", "umbral")],
            "umbral",
        ),
        (vec![], vec![("RR_NODE_SCHEME", "recrypt")], "recrypt"),
        (
            vec!["--scheme", "umbral"],
            vec![("RR_NODE_SCHEME", "recrypt")],
            "umbral",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let node = NodeProcess::start_with(
            &dir.join("data"),
            &dir.join(format!("node-{i}.log")),
            &args,
            &envs,
        );
        let rr = Rr::new(dir, &node.url);
        let out = put(&rr, "x.txt", &[]);
        assert_eq!(str_of(&out, "scheme"), expected, "{args:?} {envs:?}");
        node.stop();
    }
}
