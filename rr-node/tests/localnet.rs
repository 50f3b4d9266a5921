//! The real multi-process cluster: `rr-node localnet --replicas 4` starts four
//! `rr-node run` processes (PBFT over TCP on 127.0.0.1), and the real `rr`
//! drives the whole flow through `--node DIR/cluster.json`, with one replica
//! killed part way (f = 1).

mod cli_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cli_support::{sample, signal, Localnet, Rr};
use serde_json::Value;

/// The file named `name` somewhere under `dir`.
fn find_file(dir: &Path, name: &str) -> Option<PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if let Some(found) = find_file(&path, name) {
                return Some(found);
            }
        } else if path.file_name().is_some_and(|n| n == name) {
            return Some(path);
        }
    }
    None
}

fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

#[test]
fn localnet_flow_survives_a_killed_replica() {
    let dir = tempfile::tempdir().unwrap();
    let net = Localnet::start(&dir.path().join("net"));
    let cluster = net.dir.join("cluster.json");
    assert_eq!(net.cluster()["n"], 4);
    assert_eq!(net.cluster()["f"], 1);
    let rr = Rr::new(dir.path(), cluster.to_str().unwrap());
    rr.run(&["keys", "new", "alice"]).ok();
    rr.run(&["keys", "new", "bob"]).ok();
    let data = sample(2 << 20, 7);
    std::fs::write(dir.path().join("scan.bin"), &data).unwrap();

    let put = rr
        .run(&["--as", "alice", "put", "scan.bin", "--json"])
        .json();
    let record = put["record_id"].as_str().unwrap().to_string();
    let grant = rr
        .run(&["--as", "alice", "grant", &record, "--to", "bob", "--json"])
        .json();
    let grant_id = grant["grant_id"].as_str().unwrap().to_string();
    let got = rr
        .run(&["--as", "bob", "get", &record, "-o", "out1.bin", "--json"])
        .json();
    assert_eq!(std::fs::read(dir.path().join("out1.bin")).unwrap(), data);
    assert_eq!(got["replicas_used"].as_array().unwrap().len(), 2, "{got}");
    // A quorum of 2f + 1 = 3 replicas certify the retrieval.
    assert!(got["certified_by"].as_array().unwrap().len() >= 3, "{got}");
    assert!(got["certified_at"].as_u64().unwrap() >= 3, "{got}");
    assert_eq!(got["tx"].as_str().unwrap().len(), 64, "{got}");

    // One replica's URL is not the cluster: its certificate is from the
    // cluster's own CA, which only cluster.json pins, and rr says so.
    let replica_url = net.cluster()["replicas"][1]["api"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(replica_url.starts_with("https://"), "{replica_url}");
    rr.run(&["--node", &replica_url, "--as", "alice", "ls"])
        .fails_with(&[
            "TLS certificate",
            "not one this client trusts",
            "cluster.json",
        ]);
    assert!(
        !dir.path().join("keys/known_nodes.json").exists(),
        "a cluster's replica was pinned"
    );

    // Kill replica 2 outright: the record is still there, and the output
    // names the replica that was skipped.
    let victim = net.pid(2);
    signal(victim, "KILL");
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(victim) {
        assert!(Instant::now() < deadline, "replica 2 did not die");
        std::thread::sleep(Duration::from_millis(50));
    }
    let got = rr
        .run(&["--as", "bob", "get", &record, "-o", "out2.bin", "--json"])
        .json();
    assert_eq!(std::fs::read(dir.path().join("out2.bin")).unwrap(), data);
    let skipped: Vec<u64> = got["replicas_skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["replica"].as_u64().unwrap())
        .collect();
    assert!(skipped.contains(&2), "{got}");

    // Revoke with a replica down: complete once n - m + 1 = 3 replicas have
    // confirmed their erasure on the ledger (the dead one cannot).
    let revoked = rr
        .run(&["--as", "alice", "revoke", &grant_id, "--json"])
        .json();
    let confirmed: Vec<u64> = revoked["erasure_confirmed_by"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_u64().unwrap())
        .collect();
    assert_eq!(revoked["erasures_needed"], 3, "{revoked}");
    assert!(confirmed.len() >= 3 && !confirmed.contains(&2), "{revoked}");
    assert_eq!(revoked["tx"].as_str().unwrap().len(), 64, "{revoked}");

    // The grant's receipt, exported with a replica down, checks offline
    // against the cluster's keys, and names the replicas that signed it.
    let exported = rr
        .run(&[
            "--as",
            "bob",
            "receipt",
            "export",
            &grant_id,
            "-o",
            "grant.receipt.json",
            "--json",
        ])
        .json();
    assert!(
        exported["certified_by"].as_array().unwrap().len() >= 3,
        "{exported}"
    );
    let verified = rr
        .run(&[
            "receipt",
            "verify",
            "grant.receipt.json",
            "--cluster",
            cluster.to_str().unwrap(),
            "--json",
        ])
        .json();
    assert_eq!(verified["trusted_set"], true, "{verified}");
    assert!(
        verified["summary"]
            .as_str()
            .unwrap()
            .contains("was revoked at height"),
        "{verified}"
    );
    assert!(
        verified["details"].as_array().unwrap().iter().any(|d| d
            .as_str()
            .unwrap()
            .starts_with("replicas that confirmed erasing")),
        "{verified}"
    );
    // Bob is refused, the error says revoked, and no output file is left.
    rr.run(&["--as", "bob", "get", &record, "-o", "out3.bin"])
        .fails_with(&["revoked"]);
    assert!(!dir.path().join("out3.bin").exists());

    // The audit trail has every step, the refusal included.
    let audit = rr
        .run(&["--as", "alice", "audit", &record, "--json"])
        .json();
    let entries = audit["entries"].as_array().unwrap();
    let erasures = entries
        .iter()
        .filter(|e| e["action"] == "confirm_erasure")
        .count();
    assert_eq!(erasures, 3, "one erasure entry per live replica: {audit}");
    let actions: Vec<(String, String)> = entries
        .iter()
        .filter(|e| e["action"] != "confirm_erasure")
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_string(),
                e["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expect = [
        ("register", "ok"),
        ("grant", "ok"),
        ("retrieve", "ok"),
        ("retrieve", "ok"),
        ("revoke", "ok"),
        ("retrieve", "grant_revoked"),
    ];
    assert_eq!(
        actions,
        expect
            .iter()
            .map(|(a, o)| (a.to_string(), o.to_string()))
            .collect::<Vec<_>>()
    );

    // Replica 0's copy of the ciphertext is damaged on disk: the read falls
    // back to the next replica, and replica 0 fetches a good copy.
    let cid = put["cid"].as_str().unwrap().to_string();
    let blob = |r: usize| find_file(&net.dir.join(format!("replica-{r}/blobs")), &cid);
    let good = std::fs::read(blob(1).unwrap()).unwrap();
    let damaged = blob(0).unwrap();
    let mut bytes = good.clone();
    bytes[1000] ^= 0xff;
    std::fs::write(&damaged, &bytes).unwrap();
    rr.run(&["--as", "alice", "get", &record, "-o", "own.bin"])
        .ok();
    assert_eq!(std::fs::read(dir.path().join("own.bin")).unwrap(), data);
    wait_for("replica 0 repairs its copy", || {
        std::fs::read(&damaged).ok().as_deref() == Some(&good[..])
    });

    // A grant made while replica 2 is down: its sealed fragment is kept in
    // the keystore for later.
    let second = rr
        .run(&["--as", "alice", "grant", &record, "--to", "bob", "--json"])
        .json();
    assert_eq!(
        second["pending_replicas"],
        serde_json::json!([2]),
        "{second}"
    );
    let pending = dir.path().join("keys/pending");
    assert_eq!(std::fs::read_dir(&pending).unwrap().count(), 1);

    // Replica 2 (killed above) lost its copy too; restarted by hand, it
    // fetches the blob of every record it should hold from its peers.
    std::fs::remove_file(blob(2).unwrap()).unwrap();
    let config = net.dir.join("replica-2/node.toml");
    let mut restarted = Command::new(env!("CARGO_BIN_EXE_rr-node"))
        .arg("run")
        .arg("--config")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("replica 2 fetches the missing blob", || {
        blob(2).and_then(|p| std::fs::read(p).ok()).as_deref() == Some(&good[..])
    });
    // Back up, it takes the kept fragment.
    wait_for("rr redeliver delivers to replica 2", || {
        rr.run(&["--as", "alice", "redeliver", "--json"]).code == 0
    });
    assert_eq!(std::fs::read_dir(&pending).unwrap().count(), 0);
    let _ = restarted.kill();
    let _ = restarted.wait();

    // Ctrl-C (SIGTERM) stops every replica; cluster.json forgets the pids.
    let pids: Vec<i32> = (0..4).filter(|i| *i != 2).map(|i| net.pid(i)).collect();
    let status = net.stop();
    assert!(status.success(), "{status}");
    for pid in pids {
        assert!(!alive(pid), "replica pid {pid} outlived localnet");
    }
    let after: Value = serde_json::from_slice(&std::fs::read(&cluster).unwrap()).unwrap();
    assert!(after["replicas"][0]["pid"].is_null());
}
