//! The `rr` binary without a node: keys, argument checks, and failures that
//! must be told before any network traffic.

mod cli_support;

use cli_support::{entries, Rr};
use rr_node::keystore::Keystore;
use rr_node::PublicCard;

/// A port nothing listens on: commands that reach the network fail there.
const NO_NODE: &str = "http://127.0.0.1:1";

fn setup() -> (tempfile::TempDir, Rr) {
    let tmp = tempfile::tempdir().unwrap();
    let rr = Rr::new(tmp.path(), NO_NODE);
    (tmp, rr)
}

#[test]
fn keys_new_show_and_list() {
    let (tmp, rr) = setup();
    let created = rr.run(&["keys", "new", "alice", "--json"]).json();
    assert_eq!(created["name"], "alice");

    let shown = rr.run(&["keys", "show", "alice", "--json"]).json();
    let card: PublicCard = serde_json::from_value(shown.clone()).expect("a public card");
    assert_eq!(card.account.to_string(), created["account"]);
    // The fields the issue documents, and one PRE key per scheme.
    assert_eq!(shown["scheme"], "umbral");
    assert!(shown["pre_public_key"].as_str().unwrap().len() > 60);
    assert_eq!(shown["pre_public_keys"]["umbral"], shown["pre_public_key"]);
    assert!(shown["pre_public_keys"]["recrypt"].as_str().unwrap().len() > 60);
    assert_eq!(created["pre_public_keys"], shown["pre_public_keys"]);
    assert_eq!(
        card,
        Keystore::open(tmp.path().join("keys"))
            .unwrap()
            .public_card("alice")
            .unwrap()
    );

    // `keys show` needs no passphrase.
    let shown_again = rr
        .with_passphrase("")
        .run(&["keys", "show", "alice", "--json"])
        .json();
    assert_eq!(shown_again, shown);

    rr.run(&["keys", "new", "bob"]).ok();
    let list = rr.run(&["keys", "list", "--json"]).json();
    let names: Vec<&str> = list["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alice", "bob"]);
    assert_eq!(
        entries(&tmp.path().join("keys")),
        ["alice.card.json", "alice.key", "bob.card.json", "bob.key"]
    );

    // Human output names the card file.
    let human = rr.run(&["keys", "show", "bob"]);
    human.ok();
    assert!(human.stdout.contains("bob.card.json"), "{}", human.stdout);
}

#[cfg(unix)]
#[test]
fn key_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let (tmp, rr) = setup();
    rr.run(&["keys", "new", "alice"]).ok();
    let mode = std::fs::metadata(tmp.path().join("keys/alice.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn an_existing_key_is_never_replaced() {
    let (tmp, rr) = setup();
    rr.run(&["keys", "new", "alice"]).ok();
    let key = tmp.path().join("keys/alice.key");
    let before = std::fs::read(&key).unwrap();
    rr.run(&["keys", "new", "alice"])
        .fails_with(&["key named alice already exists"]);
    assert_eq!(std::fs::read(&key).unwrap(), before);
}

#[test]
fn bad_key_names_are_refused() {
    let (tmp, rr) = setup();
    for name in ["Alice", "a/b", "a.b", &"x".repeat(65)] {
        let run = rr.run(&["keys", "new", name]);
        run.fails_with(&["invalid key name", "a-z, 0-9"]);
        assert_eq!(run.code, 1);
    }
    assert!(!tmp.path().join("keys").exists() || entries(&tmp.path().join("keys")).is_empty());
}

#[test]
fn wrong_passphrase_is_told_before_the_network_and_changes_nothing() {
    let (tmp, rr) = setup();
    rr.run(&["keys", "new", "alice"]).ok();
    let key = tmp.path().join("keys/alice.key");
    let before = std::fs::read(&key).unwrap();
    let line = rr
        .with_passphrase("not it")
        .run(&["--as", "alice", "ls"])
        .fails_with(&["wrong passphrase for key alice", "RR_PASSPHRASE"]);
    assert!(!line.contains("connect"), "{line}");
    assert_eq!(std::fs::read(&key).unwrap(), before);
}

#[test]
fn an_unknown_key_lists_the_known_ones() {
    let (_tmp, rr) = setup();
    rr.run(&["keys", "new", "alice"]).ok();
    rr.run(&["keys", "new", "bob"]).ok();
    rr.run(&["--as", "carol", "ls"]).fails_with(&[
        "no key named carol",
        "known keys: alice, bob",
        "rr keys new",
    ]);
    rr.run(&["keys", "show", "carol"])
        .fails_with(&["no key named carol"]);
    rr.run(&["ls"])
        .fails_with(&["no key to act as", "--as NAME", "alice, bob"]);
}

#[test]
fn a_missing_node_is_told_with_what_to_do() {
    let (_tmp, rr) = setup();
    rr.run(&["keys", "new", "alice"]).ok();
    rr.run(&["--as", "alice", "ls", "--json"]).fails_with(&[
        "cannot connect",
        "node is running at http://127.0.0.1:1",
        "RR_NODE",
    ]);
    rr.run(&["--node", "not a url", "--as", "alice", "ls"])
        .fails_with(&["not a node URL"]);
}

#[test]
fn usage_errors_are_one_line_with_exit_code_2() {
    let (_tmp, rr) = setup();
    let id = "ab".repeat(32);
    for (args, needle) in [
        (vec!["frobnicate"], "frobnicate"),
        (
            vec!["--as", "alice", "get", "zz", "-o", "x"],
            "64 hex digits",
        ),
        (vec!["--as", "alice", "get", &id], "--output"),
        (
            vec![
                "--as",
                "alice",
                "grant",
                &id,
                "--to",
                "bob",
                "--expires",
                "soon",
            ],
            "30d",
        ),
        (
            vec![
                "--as",
                "alice",
                "grant",
                &id,
                "--to",
                "bob",
                "--purpose",
                "No Way",
            ],
            "purpose",
        ),
    ] {
        let run = rr.run(&args);
        run.fails_with(&["invalid command line", needle, "rr --help"]);
        assert_eq!(run.code, 2, "{args:?}");
    }
    let help = rr.run(&["--help"]);
    help.ok();
    assert!(help.stdout.contains("grant"), "{}", help.stdout);
}

#[test]
fn local_checks_come_before_the_passphrase() {
    let (tmp, rr) = setup();
    rr.run(&["keys", "new", "alice"]).ok();
    let wrong = rr.with_passphrase("not it");
    wrong
        .run(&["--as", "alice", "put", "missing.pdf"])
        .fails_with(&["cannot read missing.pdf", "check the path"]);
    let id = "ab".repeat(32);
    wrong
        .run(&["--as", "alice", "get", &id, "-o", "no/such/dir/out.pdf"])
        .fails_with(&["directory no/such/dir does not exist"]);
    assert!(!tmp.path().join("no").exists());
}

#[test]
fn grantees_need_a_card() {
    let (tmp, rr) = setup();
    rr.run(&["keys", "new", "alice"]).ok();
    let id = "ab".repeat(32);
    let account = "cd".repeat(32);
    rr.run(&["--as", "alice", "grant", &id, "--to", &account])
        .fails_with(&["account id alone is not enough", "public card", "keys show"]);
    rr.run(&["--as", "alice", "grant", &id, "--to", "nobody"])
        .fails_with(&["no file nobody and no key named nobody"]);
    std::fs::write(tmp.path().join("junk.json"), b"{\"not\": \"a card\"}").unwrap();
    rr.run(&["--as", "alice", "grant", &id, "--to", "junk.json"])
        .fails_with(&["junk.json is not a public card"]);
}
