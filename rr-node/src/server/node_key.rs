//! A dev node's own key.
//!
//! A single dev node signs the header of every block it commits (its
//! certificate, 1 of 1) and every capsule fragment it serves, with an ed25519
//! key kept in its data directory (`node.key`, 32 bytes, mode 0600). Clients
//! pin its public half on first use, as ssh does, and refuse answers signed
//! by any other key.
//!
//! The file is not encrypted: a dev node starts without a passphrase, and
//! whoever can read its data directory holds the node anyway (its ledger,
//! and the key fragments a dev node keeps as they were delivered). Record
//! contents never depend on it: they are encrypted on the owner's side.
//! Cluster replicas keep their keys in a passphrase-sealed keystore instead.

use std::io::Write;
use std::path::Path;

use ed25519_dalek::SigningKey;
use rand_core::OsRng;
use zeroize::Zeroizing;

use crate::api::NodeError;

/// The file name, in the data directory.
pub const FILE: &str = "node.key";

/// The key in `path`, or a new one written there (mode 0600) if there is
/// no file yet.
pub fn load_or_create(path: &Path) -> Result<SigningKey, NodeError> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let bytes = Zeroizing::new(bytes);
            let seed: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
                NodeError::Setup(format!(
                    "{} is not a node key (32 bytes); it is {} bytes. Move it away to make a new key (clients that pinned the old one will refuse the new one)",
                    path.display(),
                    bytes.len()
                ))
            })?;
            let seed = Zeroizing::new(seed);
            Ok(SigningKey::from_bytes(&seed))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create(path),
        Err(e) => Err(NodeError::Setup(format!(
            "cannot read the node key {}: {e}",
            path.display()
        ))),
    }
}

fn create(path: &Path) -> Result<SigningKey, NodeError> {
    let key = SigningKey::generate(&mut OsRng);
    let io = |e: std::io::Error| {
        NodeError::Setup(format!("cannot write the node key {}: {e}", path.display()))
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(io)?;
    }
    tmp.write_all(Zeroizing::new(key.to_bytes()).as_slice())
        .map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    // Never replace a key another start wrote meanwhile.
    tmp.persist_noclobber(path).map_err(|e| io(e.error))?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_made_once_kept_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let a = load_or_create(&path).unwrap();
        let b = load_or_create(&path).unwrap();
        assert_eq!(a.to_bytes(), b.to_bytes());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, b"short").unwrap();
        let err = load_or_create(&path).unwrap_err();
        assert!(err.to_string().contains("not a node key"), "{err}");
    }
}
