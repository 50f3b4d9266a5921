//! Receipt files: writing what `rr receipt export` fetched, and `rr receipt
//! verify`, which checks a file offline (no node, no keystore, no
//! passphrase) and says what it proves.

use std::io::{Read, Write};
use std::path::Path;

use rr_core::cert::ReplicaSetInfo;
use rr_core::AccountId;
use rr_node::receipt::{Proof, ReceiptError, ReceiptFile, Statement, MAX_FILE_BYTES};
use rr_node::ClusterFile;
use serde_json::{json, Value};

use super::fail::Failure;
use super::output::print_json;

/// The replica set a receipt is checked against, and where it came from.
pub struct Trusted {
    /// The set.
    pub set: ReplicaSetInfo,
    /// Where it came from, for people: "dev node key 5a29…", "cluster.json".
    pub source: String,
}

/// `grant`, `record` or `transaction`.
pub fn kind(proof: &Proof) -> &'static str {
    match proof {
        Proof::Transaction { .. } => "transaction",
        Proof::Grant { .. } => "grant",
        Proof::Record { .. } => "record",
    }
}

/// The id the proof is about, hex.
pub fn subject(proof: &Proof) -> String {
    match proof {
        Proof::Transaction { tx, .. } => tx.to_string(),
        Proof::Grant { grant, .. } => grant.to_string(),
        Proof::Record { record, .. } => record.to_string(),
    }
}

/// `replica 0` or `replicas 0, 1, 3`.
pub fn replicas_list(ids: &[u16]) -> String {
    let list = ids
        .iter()
        .map(|r| r.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    if ids.len() == 1 {
        format!("replica {list}")
    } else {
        format!("replicas {list}")
    }
}

/// The statement's summary with who certified it, at which height.
pub fn headline(s: &Statement) -> String {
    format!(
        "{}, certified by {} at height {} ({})",
        s.summary,
        replicas_list(&s.certified_by),
        s.height,
        s.time
    )
}

/// The statement as JSON (the fields both `export` and `verify` print).
pub fn statement_json(file: &ReceiptFile, s: &Statement) -> Value {
    json!({
        "kind": kind(&file.proof),
        "id": subject(&file.proof),
        "summary": s.summary,
        "details": s.details,
        "height": s.height,
        "time": s.time.to_string(),
        "certified_by": s.certified_by,
        "replica_set": file.replica_set.keys().iter().map(|k| k.to_string()).collect::<Vec<_>>(),
    })
}

/// Writes `bytes` to `path` through a temporary file beside it, so `path`
/// is the whole file or untouched.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let fail = |e: std::io::Error| {
        Failure::new(format!("cannot write {}", path.display()), e)
            .hint("check the directory exists and is writable")
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".rr-receipt-")
        .tempfile_in(dir)
        .map_err(fail)?;
    tmp.write_all(bytes).map_err(fail)?;
    tmp.as_file().sync_all().map_err(fail)?;
    tmp.persist(path).map_err(|e| fail(e.error))?;
    Ok(())
}

/// Reads a receipt file, at most [`MAX_FILE_BYTES`].
pub fn read_file(path: &Path) -> Result<ReceiptFile, Failure> {
    let what = format!("cannot read receipt {}", path.display());
    let file =
        std::fs::File::open(path).map_err(|e| Failure::new(&what, e).hint("check the path"))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Failure::new(&what, e))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(Failure::new(
            &what,
            format!(
                "it is larger than {} MiB, more than any receipt rr writes",
                MAX_FILE_BYTES >> 20
            ),
        )
        .hint("pass a file `rr receipt export` wrote"));
    }
    ReceiptFile::from_json(&bytes)
        .map_err(|e| Failure::new(&what, e).hint("pass a file `rr receipt export` wrote"))
}

/// The set `--cluster` or `--key` names, if either is given.
pub fn trusted(cluster: Option<&Path>, key: Option<&str>) -> Result<Option<Trusted>, Failure> {
    if let Some(path) = cluster {
        let what = format!("cannot use {} as the trusted cluster", path.display());
        let set = ClusterFile::read(path)
            .and_then(|f| f.replica_set())
            .map_err(|e| {
                Failure::new(&what, e).hint("pass the cluster.json `rr-node localnet` wrote")
            })?;
        return Ok(Some(Trusted {
            source: format!("the {} replicas of {}", set.n(), path.display()),
            set,
        }));
    }
    if let Some(key) = key {
        let what = format!("cannot use {key:?} as the trusted node key");
        let account = AccountId::from_hex(key).map_err(|_| {
            Failure::new(&what, "a node key is 64 hex digits").hint(
                "`rr trust list` shows the keys rr pinned; a dev node shows its own in GET /v1/info (replica_set)",
            )
        })?;
        let set = ReplicaSetInfo::new(vec![account])
            .map_err(|e| Failure::new(&what, e).hint("check the key"))?;
        return Ok(Some(Trusted {
            source: format!("dev node key {account}"),
            set,
        }));
    }
    Ok(None)
}

fn refused(path: &Path, err: ReceiptError) -> Failure {
    let hint = match &err {
        ReceiptError::OtherReplicaSet { .. } => {
            "it was certified by other replicas than the ones given with --key or --cluster, or the file was changed; nothing in it can be relied on"
        }
        ReceiptError::Format(_) => "pass a file `rr receipt export` wrote",
        _ => "the file was changed after it was exported, or forged; nothing in it can be relied on",
    };
    Failure::new(format!("receipt {} does not hold", path.display()), err).hint(hint)
}

/// `rr receipt verify FILE [--cluster FILE | --key HEX]`.
pub fn verify(
    json: bool,
    path: &Path,
    cluster: Option<&Path>,
    key: Option<&str>,
) -> Result<(), Failure> {
    let trusted = trusted(cluster, key)?;
    let file = read_file(path)?;
    let statement = file
        .verify(trusted.as_ref().map(|t| &t.set))
        .map_err(|e| refused(path, e))?;
    let file_keys = file
        .replica_set
        .keys()
        .iter()
        .map(|k| k.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let note = match &trusted {
        Some(_) => None,
        None => Some(format!(
            "checked against the keys the file itself names ({file_keys}): this proves only that those keys signed it, not that they are your node's or cluster's; pass --key HEX or --cluster cluster.json to check it against the replicas you trust"
        )),
    };
    if json {
        let mut out = statement_json(&file, &statement);
        out["file"] = json!(path.display().to_string());
        out["valid"] = json!(true);
        out["trusted_set"] = json!(statement.trusted_set);
        out["checked_against"] = json!(trusted
            .as_ref()
            .map(|t| t.source.clone())
            .unwrap_or_else(|| "the replica set the file names".into()));
        out["note"] = json!(note);
        print_json(&out);
        return Ok(());
    }
    println!("{}", headline(&statement));
    for line in &statement.details {
        println!("  {line}");
    }
    match (&trusted, &note) {
        (Some(t), _) => println!(
            "valid: every certificate and proof of this {} receipt holds for {}",
            kind(&file.proof),
            t.source
        ),
        (None, Some(note)) => println!("valid, but note: {note}"),
        (None, None) => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signers_are_listed_for_people() {
        assert_eq!(replicas_list(&[0]), "replica 0");
        assert_eq!(replicas_list(&[0, 1, 3]), "replicas 0, 1, 3");
    }

    #[test]
    fn a_trusted_key_must_be_a_key() {
        let key = AccountId::from_verifying_key(
            &ed25519_dalek::SigningKey::from_bytes(&[7; 32]).verifying_key(),
        )
        .to_string();
        let t = trusted(None, Some(&key)).unwrap().expect("a set");
        assert_eq!(t.set.n(), 1);
        assert!(t.source.contains(&key));
        let f = trusted(None, Some("xyz")).err().expect("refused");
        assert!(f.to_string().contains("64 hex digits"), "{f}");
        assert!(trusted(None, None).unwrap().is_none());
    }
}
