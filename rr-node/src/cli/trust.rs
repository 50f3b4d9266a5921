//! What `rr` remembers between runs, beside the keys in the keystore
//! directory, so that a node cannot fool it by being swapped or rolled back:
//!
//! - `known_nodes.json`: each dev node URL and the key it presented the
//!   first time (trust on first use). A node at that URL presenting another
//!   key is refused until `rr trust forget URL`. A cluster's `cluster.json`
//!   names its replicas' keys itself: nothing is pinned for it.
//! - `seen.json`: for each replica set (by its digest), the newest certified
//!   height rr has seen. An answer older than that is refused by
//!   [`rr_node::Replicas`]: a node restored from an old copy, or cut off,
//!   cannot show an outdated grant or audit trail as current.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use rr_core::cert::ReplicaSetInfo;
use rr_core::{AccountId, Digest, Timestamp};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::fail::Failure;

/// Dev node URL → its pinned key.
pub const KNOWN_NODES_FILE: &str = "known_nodes.json";

/// Replica-set digest (hex) → newest certified height seen.
pub const SEEN_FILE: &str = "seen.json";

/// Neither file is ever anywhere near this large.
const MAX_FILE_BYTES: u64 = 4 << 20;

/// A dev node's key, as first seen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pin {
    /// The node's ed25519 key, hex.
    pub key: String,
    /// When rr first saw it (RFC 3339).
    pub first_seen: String,
}

/// `known_nodes.json`.
pub type KnownNodes = BTreeMap<String, Pin>;

/// `seen.json`.
pub type SeenHeights = BTreeMap<String, u64>;

/// What [`pin`] found.
#[derive(Debug)]
pub enum PinCheck {
    /// The URL was pinned to this key already.
    Known,
    /// First use: the key is now pinned in this file.
    New(PathBuf),
    /// The URL is pinned to another key.
    Changed(Pin),
}

/// The form URLs are pinned under: `http://127.0.0.1:7700/` and
/// `http://127.0.0.1:7700` are one node.
pub fn normalize_url(url: &str) -> String {
    match reqwest::Url::parse(url.trim()) {
        Ok(u) => u.as_str().trim_end_matches('/').to_string(),
        Err(_) => url.trim().trim_end_matches('/').to_string(),
    }
}

/// The replica set of one dev node whose key is `key`.
pub fn single_set(key: AccountId) -> Option<ReplicaSetInfo> {
    ReplicaSetInfo::new(vec![key]).ok()
}

fn read<T: DeserializeOwned + Default>(path: &Path) -> Result<T, Failure> {
    let what = || format!("cannot read {}", path.display());
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(T::default()),
        Err(e) => return Err(Failure::new(what(), e)),
    };
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Failure::new(what(), e))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(Failure::new(what(), "it is larger than 4 MiB")
            .hint("it is not a file rr wrote; move it away"));
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        Failure::new(what(), format!("it is not what rr writes there ({e})"))
            .hint("fix it or move it away (rr then forgets what it remembered there)")
    })
}

fn write<T: Serialize>(dir: &Path, name: &str, value: &T) -> Result<(), Failure> {
    let path = dir.join(name);
    let fail = |e: std::io::Error| {
        Failure::new(format!("cannot write {}", path.display()), e)
            .hint("check that the keystore directory is writable")
    };
    std::fs::create_dir_all(dir).map_err(fail)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(fail)?;
    let mut bytes = serde_json::to_vec_pretty(value).expect("a map serializes");
    bytes.push(b'\n');
    tmp.write_all(&bytes).map_err(fail)?;
    tmp.as_file().sync_all().map_err(fail)?;
    tmp.persist(&path).map_err(|e| fail(e.error))?;
    Ok(())
}

/// The pinned dev nodes.
pub fn known_nodes(dir: &Path) -> Result<KnownNodes, Failure> {
    read(&dir.join(KNOWN_NODES_FILE))
}

/// Checks `key` against the key pinned for `url`, pinning it if there is
/// none yet.
pub fn pin(dir: &Path, url: &str, key: &AccountId) -> Result<PinCheck, Failure> {
    let mut known = known_nodes(dir)?;
    let hex_key = key.to_string();
    match known.get(url) {
        Some(p) if p.key.eq_ignore_ascii_case(&hex_key) => Ok(PinCheck::Known),
        Some(p) => Ok(PinCheck::Changed(p.clone())),
        None => {
            let now = Timestamp::from_system_time(std::time::SystemTime::now());
            known.insert(
                url.to_string(),
                Pin {
                    key: hex_key,
                    first_seen: now.to_string(),
                },
            );
            write(dir, KNOWN_NODES_FILE, &known)?;
            Ok(PinCheck::New(dir.join(KNOWN_NODES_FILE)))
        }
    }
}

/// Removes `url`'s pin, and the newest height seen from that node; the pin
/// removed, if there was one.
pub fn forget(dir: &Path, url: &str) -> Result<Option<Pin>, Failure> {
    let mut known = known_nodes(dir)?;
    let Some(pin) = known.remove(url) else {
        return Ok(None);
    };
    write(dir, KNOWN_NODES_FILE, &known)?;
    let set = AccountId::from_hex(&pin.key).ok().and_then(single_set);
    if let Some(set) = set {
        let mut seen: SeenHeights = read(&dir.join(SEEN_FILE))?;
        if seen.remove(&set.digest().to_string()).is_some() {
            write(dir, SEEN_FILE, &seen)?;
        }
    }
    Ok(Some(pin))
}

/// The newest certified height seen of replica set `set` (0: none).
pub fn seen(dir: &Path, set: &Digest) -> Result<u64, Failure> {
    let seen: SeenHeights = read(&dir.join(SEEN_FILE))?;
    Ok(seen.get(&set.to_string()).copied().unwrap_or(0))
}

/// Keeps `height` as the newest seen of `set`, unless a newer one is kept.
pub fn remember_seen(dir: &Path, set: &Digest, height: u64) -> Result<(), Failure> {
    let mut seen: SeenHeights = read(&dir.join(SEEN_FILE))?;
    let entry = seen.entry(set.to_string()).or_insert(0);
    if height <= *entry {
        return Ok(());
    }
    *entry = height;
    write(dir, SEEN_FILE, &seen)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u8) -> AccountId {
        AccountId::from_verifying_key(
            &ed25519_dalek::SigningKey::from_bytes(&[i; 32]).verifying_key(),
        )
    }

    #[test]
    fn urls_are_pinned_in_one_form() {
        assert_eq!(
            normalize_url("http://127.0.0.1:7700/"),
            normalize_url(" http://127.0.0.1:7700")
        );
        assert_eq!(
            normalize_url("HTTP://LocalHost:7700"),
            "http://localhost:7700"
        );
    }

    #[test]
    fn a_pin_holds_until_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let url = "http://127.0.0.1:7700";
        assert!(matches!(
            pin(dir.path(), url, &key(1)).unwrap(),
            PinCheck::New(_)
        ));
        assert!(matches!(
            pin(dir.path(), url, &key(1)).unwrap(),
            PinCheck::Known
        ));
        match pin(dir.path(), url, &key(2)).unwrap() {
            PinCheck::Changed(p) => assert_eq!(p.key, key(1).to_string()),
            other => panic!("{other:?}"),
        }
        let digest = single_set(key(1)).unwrap().digest();
        remember_seen(dir.path(), &digest, 7).unwrap();
        remember_seen(dir.path(), &digest, 5).unwrap();
        assert_eq!(seen(dir.path(), &digest).unwrap(), 7);
        assert_eq!(
            forget(dir.path(), url).unwrap().unwrap().key,
            key(1).to_string()
        );
        assert_eq!(seen(dir.path(), &digest).unwrap(), 0);
        assert!(forget(dir.path(), url).unwrap().is_none());
        assert!(matches!(
            pin(dir.path(), url, &key(2)).unwrap(),
            PinCheck::New(_)
        ));
    }

    #[test]
    fn a_damaged_file_is_refused_clearly() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(SEEN_FILE), b"{not json").unwrap();
        let f = seen(dir.path(), &Digest::default()).unwrap_err();
        assert!(f.to_string().contains("seen.json"), "{f}");
        assert!(f.to_string().contains("move it away"), "{f}");
    }
}
