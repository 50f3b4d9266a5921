//! An encrypted keystore: one file per identity, sealed under a passphrase.
//!
//! A keystore is a directory. Each identity `NAME` has two files in it:
//!
//! - `NAME.key`: the identity's secrets (the ed25519 signing key and the
//!   root seed every scheme's PRE master secret is derived from, see
//!   [`RootIdentity`]), encrypted with XChaCha20-Poly1305 under a key that
//!   Argon2id derives from the passphrase. Mode 0600.
//! - `NAME.card.json`: the identity's [`PublicCard`] (one PRE public key per
//!   scheme), unencrypted, so showing or sharing it needs no passphrase.
//!
//! Files are written atomically (a temporary file, then a rename that refuses
//! to replace an existing key), so a crash never leaves half a key, and a key
//! is never overwritten.
//!
//! ## The `NAME.key` format (version 2)
//!
//! | bytes | field |
//! | --- | --- |
//! | 8 | magic `RRKEYS\0\0` |
//! | 2 | format version, little endian (2) |
//! | 2 | PRE scheme id, little endian: 0, every scheme |
//! | 1 | KDF: 1 = Argon2id, version 0x13 |
//! | 4 + 4 + 4 | Argon2 memory (KiB), iterations, parallelism, little endian |
//! | 16 | salt |
//! | 24 | XChaCha20-Poly1305 nonce |
//! | 64 + 16 | ciphertext of `signing key (32) ‖ root seed (32)`, with its 16-byte tag |
//!
//! The whole header is the AEAD's associated data, so changing the version,
//! the scheme or the KDF parameters makes the file fail to open rather than
//! open wrongly. Each scheme's master secret is
//! `blake3::derive_key("resilient-records keystore v2 <scheme name> master", root seed)`.
//!
//! Version 1 files (rr before per-record schemes) have the same header with
//! version 1 and the one scheme they hold a key for, and seal `signing key
//! (32) ‖ that scheme's master secret`. They are still read: such a key
//! serves that scheme only (umbral, for every file `rr` made), and its card
//! has that scheme's key only. A new key (`rr keys new`) serves every scheme.
//!
//! ```
//! use rr_core::SchemeId;
//! use rr_node::keystore::{KdfParams, Keystore};
//! use rr_node::RootIdentity;
//! use rr_pre::Recrypt;
//!
//! let dir = tempfile::tempdir()?;
//! // Tests use cheap KDF parameters; `Keystore::open` uses the real ones.
//! let store = Keystore::open_with_kdf(dir.path(), KdfParams::insecure_for_tests())?;
//! let alice = RootIdentity::generate();
//! let card = store.create("alice", "correct horse", &alice)?;
//! assert_eq!(store.public_card("alice")?, card);
//! assert_eq!(card.schemes(), [SchemeId::UMBRAL, SchemeId::RECRYPT]);
//! let again = store.load("alice", "correct horse")?;
//! assert_eq!(again.account(), alice.account());
//! // The identity of one scheme, for a `Client` of that scheme.
//! let recrypt = again.for_scheme(&Recrypt)?;
//! assert_eq!(recrypt.account(), alice.account());
//! let err = store.load("alice", "wrong").unwrap_err();
//! assert_eq!(err.to_string(), "wrong passphrase for key alice");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand_core::{OsRng, RngCore};
use rr_core::SchemeId;
use zeroize::Zeroizing;

use crate::client::{PublicCard, RootIdentity, Seeds, CLIENT_SCHEMES};

const MAGIC: [u8; 8] = *b"RRKEYS\0\0";
/// Signing key and root seed: a key for every scheme.
const VERSION: u16 = 2;
/// Signing key and one scheme's master secret (rr before per-record schemes).
const VERSION_SINGLE_SCHEME: u16 = 1;
/// The header's scheme field in a version 2 file.
const EVERY_SCHEME: SchemeId = SchemeId(0);
const KDF_ARGON2ID_13: u8 = 1;
const SALT_LEN: usize = 16;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = 8 + 2 + 2 + 1 + 12 + SALT_LEN + NONCE_LEN;
/// No real key file comes near this; a larger file is not read into memory.
const MAX_KEY_FILE: u64 = 64 * 1024;
const KEY_EXT: &str = ".key";
const CARD_EXT: &str = ".card.json";
/// The longest key name.
pub const MAX_NAME_LEN: usize = 64;

/// Errors of keystore operations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeystoreError {
    /// The name is not 1 to 64 characters of `a-z`, `0-9`, `-`, `_`.
    #[error("invalid key name {name:?}: use 1 to 64 characters of a-z, 0-9, '-' or '_' (for example \"alice\")")]
    BadName {
        /// The name given (truncated).
        name: String,
    },
    /// A key with this name exists; keys are never overwritten.
    #[error("a key named {name} already exists in {}; choose another name (keys are never overwritten)", dir.display())]
    Exists {
        /// The name.
        name: String,
        /// The keystore directory.
        dir: PathBuf,
    },
    /// No key with this name.
    #[error("no key named {name} in {}; {}", dir.display(), known_names(known))]
    UnknownName {
        /// The name asked for.
        name: String,
        /// The keystore directory.
        dir: PathBuf,
        /// The names the keystore holds.
        known: Vec<String>,
    },
    /// The key file did not decrypt: the passphrase is wrong (or, which the
    /// cipher cannot tell apart, the file's ciphertext was altered).
    #[error("wrong passphrase for key {name}")]
    WrongPassphrase {
        /// The name.
        name: String,
    },
    /// An empty passphrase was given for a new key.
    #[error("the passphrase is empty; a key needs a passphrase")]
    EmptyPassphrase,
    /// The key file is not a key file this version can read.
    #[error("key file {} is corrupt: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The key file is of version 1 and holds a key for a scheme this build
    /// cannot use.
    #[error("key {name} was made for scheme {stored}, which this build cannot use; create a new key with `rr keys new`")]
    UnusableScheme {
        /// The name.
        name: String,
        /// The scheme in the file.
        stored: SchemeId,
    },
    /// KDF parameters out of range.
    #[error("invalid key derivation parameters: {0}")]
    BadKdfParams(String),
    /// The file system failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

fn known_names(known: &[String]) -> String {
    if known.is_empty() {
        "the keystore holds no keys".to_string()
    } else {
        format!("known keys: {}", known.join(", "))
    }
}

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> KeystoreError {
    let context = context.into();
    move |source| KeystoreError::Io { context, source }
}

/// Argon2id parameters used to derive a key file's encryption key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Iterations (passes over the memory).
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for KdfParams {
    /// 46 MiB, 1 iteration, 1 lane: OWASP's first recommended Argon2id
    /// setting. A fraction of a second on a laptop, costly for an attacker
    /// guessing passphrases on stolen key files, and it keeps the `rr`
    /// process under 64 MiB at its peak (the KDF's memory is most of it).
    fn default() -> Self {
        Self {
            memory_kib: 46 * 1024,
            iterations: 1,
            parallelism: 1,
        }
    }
}

impl KdfParams {
    /// The largest memory cost a key file may ask for (1 GiB), so a damaged
    /// or hostile file cannot make `load` allocate without bound.
    pub const MAX_MEMORY_KIB: u32 = 1024 * 1024;
    /// The largest iteration count a key file may ask for.
    pub const MAX_ITERATIONS: u32 = 64;
    /// The largest lane count a key file may ask for.
    pub const MAX_PARALLELISM: u32 = 16;

    /// Cheap parameters (64 KiB, 1 iteration) for tests only: a key file
    /// made with them falls quickly to a passphrase-guessing attacker.
    pub fn insecure_for_tests() -> Self {
        Self {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        }
    }

    /// Checks the parameters are ones Argon2 accepts and within the limits.
    pub fn validate(&self) -> Result<(), KeystoreError> {
        let bad = |s: String| Err(KeystoreError::BadKdfParams(s));
        if self.parallelism == 0 || self.parallelism > Self::MAX_PARALLELISM {
            return bad(format!(
                "parallelism {} is not in 1..={}",
                self.parallelism,
                Self::MAX_PARALLELISM
            ));
        }
        if self.iterations == 0 || self.iterations > Self::MAX_ITERATIONS {
            return bad(format!(
                "iterations {} is not in 1..={}",
                self.iterations,
                Self::MAX_ITERATIONS
            ));
        }
        let min_memory = 8 * self.parallelism;
        if self.memory_kib < min_memory || self.memory_kib > Self::MAX_MEMORY_KIB {
            return bad(format!(
                "memory {} KiB is not in {min_memory}..={} KiB",
                self.memory_kib,
                Self::MAX_MEMORY_KIB
            ));
        }
        Ok(())
    }

    fn derive(&self, passphrase: &str, salt: &[u8]) -> Result<Zeroizing<[u8; 32]>, String> {
        let params =
            argon2::Params::new(self.memory_kib, self.iterations, self.parallelism, Some(32))
                .map_err(|e| e.to_string())?;
        let argon =
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut key = Zeroizing::new([0u8; 32]);
        argon
            .hash_password_into(passphrase.as_bytes(), salt, &mut key[..])
            .map_err(|e| e.to_string())?;
        Ok(key)
    }
}

/// The parsed, still encrypted, contents of a key file.
struct KeyFile {
    version: u16,
    /// [`EVERY_SCHEME`] in version 2; the key's scheme in version 1.
    scheme: SchemeId,
    kdf: KdfParams,
    salt: [u8; SALT_LEN],
    nonce: [u8; NONCE_LEN],
    ciphertext: Vec<u8>,
}

impl KeyFile {
    fn header(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        let mut at = 0;
        let mut put = |bytes: &[u8]| {
            h[at..at + bytes.len()].copy_from_slice(bytes);
            at += bytes.len();
        };
        put(&MAGIC);
        put(&self.version.to_le_bytes());
        put(&self.scheme.0.to_le_bytes());
        put(&[KDF_ARGON2ID_13]);
        put(&self.kdf.memory_kib.to_le_bytes());
        put(&self.kdf.iterations.to_le_bytes());
        put(&self.kdf.parallelism.to_le_bytes());
        put(&self.salt);
        put(&self.nonce);
        h
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.header().to_vec();
        out.extend_from_slice(&self.ciphertext);
        out
    }

    fn parse(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() < MAGIC.len() || bytes[..MAGIC.len()] != MAGIC {
            return Err("it does not start with the keystore's magic bytes".into());
        }
        if bytes.len() < HEADER_LEN + TAG_LEN + 32 {
            return Err(format!("it is truncated ({} bytes)", bytes.len()));
        }
        let u16_at = |i: usize| u16::from_le_bytes([bytes[i], bytes[i + 1]]);
        let u32_at = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().expect("4 bytes"));
        let version = u16_at(8);
        if version != VERSION && version != VERSION_SINGLE_SCHEME {
            return Err(format!(
                "format version {version} is not one this program reads (it reads {VERSION_SINGLE_SCHEME} and {VERSION}); use a newer rr"
            ));
        }
        let scheme = SchemeId(u16_at(10));
        if version == VERSION && scheme != EVERY_SCHEME {
            return Err(format!(
                "its scheme field is {}, not 0 as format version {VERSION} writes",
                scheme.0
            ));
        }
        if bytes[12] != KDF_ARGON2ID_13 {
            return Err(format!("unknown key derivation function {}", bytes[12]));
        }
        let kdf = KdfParams {
            memory_kib: u32_at(13),
            iterations: u32_at(17),
            parallelism: u32_at(21),
        };
        kdf.validate().map_err(|e| e.to_string())?;
        let mut salt = [0u8; SALT_LEN];
        salt.copy_from_slice(&bytes[25..25 + SALT_LEN]);
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&bytes[25 + SALT_LEN..HEADER_LEN]);
        Ok(Self {
            version,
            scheme,
            kdf,
            salt,
            nonce,
            ciphertext: bytes[HEADER_LEN..].to_vec(),
        })
    }
}

/// A directory of passphrase-encrypted identities. See the module docs.
#[derive(Clone, Debug)]
pub struct Keystore {
    dir: PathBuf,
    kdf: KdfParams,
}

impl Keystore {
    /// The keystore in `dir`, sealing new keys with the default Argon2id
    /// parameters. The directory is created when the first key is.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, KeystoreError> {
        Self::open_with_kdf(dir, KdfParams::default())
    }

    /// Like [`Keystore::open`], sealing new keys with `kdf` (tests pass
    /// [`KdfParams::insecure_for_tests`]). Keys are always opened with the
    /// parameters written in their file.
    pub fn open_with_kdf(dir: impl Into<PathBuf>, kdf: KdfParams) -> Result<Self, KeystoreError> {
        kdf.validate()?;
        let dir = dir.into();
        if dir.exists() && !dir.is_dir() {
            return Err(KeystoreError::Io {
                context: format!("cannot use {} as a keystore", dir.display()),
                source: std::io::Error::other("it is not a directory"),
            });
        }
        Ok(Self { dir, kdf })
    }

    /// `~/.config/resilient-records/keys`, from the `HOME` variable; `None`
    /// if it is unset.
    pub fn default_dir() -> Option<PathBuf> {
        let home = std::env::var_os("HOME").filter(|h| !h.is_empty())?;
        Some(
            PathBuf::from(home)
                .join(".config")
                .join("resilient-records")
                .join("keys"),
        )
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Checks a key name: 1 to 64 characters of `a-z`, `0-9`, `-`, `_`.
    pub fn validate_name(name: &str) -> Result<(), KeystoreError> {
        let ok = !name.is_empty()
            && name.len() <= MAX_NAME_LEN
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if ok {
            Ok(())
        } else {
            Err(KeystoreError::BadName {
                name: name.chars().take(80).collect(),
            })
        }
    }

    /// The path of `name`'s encrypted key file.
    pub fn key_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}{KEY_EXT}"))
    }

    /// The path of `name`'s public card.
    pub fn card_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}{CARD_EXT}"))
    }

    /// Whether a key named `name` exists (false for an invalid name).
    pub fn contains(&self, name: &str) -> bool {
        Self::validate_name(name).is_ok() && self.key_path(name).is_file()
    }

    /// The names of the keys, sorted. Empty if the directory does not exist.
    pub fn list(&self) -> Result<Vec<String>, KeystoreError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(io_err(format!(
                    "cannot list keystore {}",
                    self.dir.display()
                ))(e))
            }
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_err(format!(
                "cannot list keystore {}",
                self.dir.display()
            )))?;
            let file_name = entry.file_name();
            let Some(name) = file_name.to_str().and_then(|f| f.strip_suffix(KEY_EXT)) else {
                continue;
            };
            if Self::validate_name(name).is_ok() {
                names.push(name.to_string());
            }
        }
        names.sort();
        Ok(names)
    }

    fn unknown(&self, name: &str) -> KeystoreError {
        KeystoreError::UnknownName {
            name: name.to_string(),
            dir: self.dir.clone(),
            known: self.list().unwrap_or_default(),
        }
    }

    /// Seals `identity` under `passphrase` as `name`, and writes its public
    /// card ([`RootIdentity::card`]) beside it. Refuses a name that exists.
    /// An identity read from a version 1 file is written in version 1 again,
    /// so nothing is lost.
    pub fn create(
        &self,
        name: &str,
        passphrase: &str,
        identity: &RootIdentity,
    ) -> Result<PublicCard, KeystoreError> {
        Self::validate_name(name)?;
        if passphrase.is_empty() {
            return Err(KeystoreError::EmptyPassphrase);
        }
        if self.key_path(name).exists() {
            return Err(KeystoreError::Exists {
                name: name.to_string(),
                dir: self.dir.clone(),
            });
        }
        create_private_dir(&self.dir)?;

        let (signing, seeds) = identity.secrets();
        let (version, scheme, secret): (u16, SchemeId, &[u8]) = match seeds {
            Seeds::Root(root) => (VERSION, EVERY_SCHEME, &root[..]),
            Seeds::Single { scheme, master } => (VERSION_SINGLE_SCHEME, *scheme, &master[..]),
        };
        let mut plaintext = Zeroizing::new(Vec::with_capacity(32 + secret.len()));
        plaintext.extend_from_slice(&signing[..]);
        plaintext.extend_from_slice(secret);

        let mut salt = [0u8; SALT_LEN];
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut salt);
        OsRng.fill_bytes(&mut nonce);
        let mut file = KeyFile {
            version,
            scheme,
            kdf: self.kdf,
            salt,
            nonce,
            ciphertext: Vec::new(),
        };
        let key = self
            .kdf
            .derive(passphrase, &salt)
            .map_err(KeystoreError::BadKdfParams)?;
        let aead = XChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(&key[..]));
        let header = file.header();
        file.ciphertext = aead
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &plaintext,
                    aad: &header,
                },
            )
            .map_err(|_| KeystoreError::Io {
                context: format!("cannot seal key {name}"),
                source: std::io::Error::other("encryption failed"),
            })?;

        let card = identity.card();
        let card_json = serde_json::to_vec_pretty(&card).expect("a public card serializes");
        let key_path = self.key_path(name);
        write_atomically(&self.dir, &key_path, &file.to_bytes(), 0o600, false).map_err(
            |e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => KeystoreError::Exists {
                    name: name.to_string(),
                    dir: self.dir.clone(),
                },
                _ => io_err(format!("cannot write {}", key_path.display()))(e),
            },
        )?;
        let card_path = self.card_path(name);
        let mut card_bytes = card_json;
        card_bytes.push(b'\n');
        if let Err(e) = write_atomically(&self.dir, &card_path, &card_bytes, 0o644, true) {
            // Without its card the key would half exist: take it back.
            let _ = std::fs::remove_file(&key_path);
            return Err(io_err(format!("cannot write {}", card_path.display()))(e));
        }
        Ok(card)
    }

    /// Opens `name` with `passphrase`. Changes nothing on disk, except a
    /// public card stored unsigned (by an rr before cards were signed), which
    /// it replaces with the signed one.
    /// [`RootIdentity::for_scheme`] then gives the identity of each scheme.
    pub fn load(&self, name: &str, passphrase: &str) -> Result<RootIdentity, KeystoreError> {
        Self::validate_name(name)?;
        let path = self.key_path(name);
        let bytes = match read_bounded(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(self.unknown(name)),
            Err(e) => return Err(io_err(format!("cannot read {}", path.display()))(e)),
        };
        let corrupt = |reason: String| KeystoreError::Corrupt {
            path: path.clone(),
            reason,
        };
        let file = KeyFile::parse(&bytes).map_err(corrupt)?;
        let identity = self.decrypt(name, passphrase, &file, &corrupt)?;
        // A card written before cards were signed (or damaged): sign it now
        // that the key is open, so granting to it works again.
        let card = identity.card();
        if self.public_card(name).ok().as_ref() != Some(&card) {
            let mut bytes = serde_json::to_vec_pretty(&card).expect("a card serializes");
            bytes.push(b'\n');
            let card_path = self.card_path(name);
            write_atomically(&self.dir, &card_path, &bytes, 0o644, true)
                .map_err(io_err(format!("cannot write {}", card_path.display())))?;
        }
        Ok(identity)
    }

    fn decrypt(
        &self,
        name: &str,
        passphrase: &str,
        file: &KeyFile,
        corrupt: &dyn Fn(String) -> KeystoreError,
    ) -> Result<RootIdentity, KeystoreError> {
        if file.version == VERSION_SINGLE_SCHEME && !CLIENT_SCHEMES.contains(&file.scheme) {
            return Err(KeystoreError::UnusableScheme {
                name: name.to_string(),
                stored: file.scheme,
            });
        }
        let key = file.kdf.derive(passphrase, &file.salt).map_err(corrupt)?;
        let aead = XChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(&key[..]));
        let plaintext = Zeroizing::new(
            aead.decrypt(
                XNonce::from_slice(&file.nonce),
                Payload {
                    msg: &file.ciphertext,
                    aad: &file.header(),
                },
            )
            .map_err(|_| KeystoreError::WrongPassphrase {
                name: name.to_string(),
            })?,
        );
        if plaintext.len() < 32 {
            return Err(corrupt("the sealed secrets are too short".into()));
        }
        let mut signing = Zeroizing::new([0u8; 32]);
        signing.copy_from_slice(&plaintext[..32]);
        let secret = &plaintext[32..];
        if file.version == VERSION_SINGLE_SCHEME {
            return RootIdentity::from_single_scheme(&signing, file.scheme, secret)
                .map_err(corrupt);
        }
        let root: &[u8; 32] = secret.try_into().map_err(|_| {
            corrupt(format!(
                "the sealed root seed is {} bytes, not 32",
                secret.len()
            ))
        })?;
        Ok(RootIdentity::from_root_bytes(&signing, root))
    }

    /// `name`'s public card (no passphrase needed).
    pub fn public_card(&self, name: &str) -> Result<PublicCard, KeystoreError> {
        Self::validate_name(name)?;
        let path = self.card_path(name);
        let bytes = match read_bounded(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if self.key_path(name).exists() {
                    return Err(KeystoreError::Corrupt {
                        path,
                        reason: format!("it is missing, though key {name} exists"),
                    });
                }
                return Err(self.unknown(name));
            }
            Err(e) => return Err(io_err(format!("cannot read {}", path.display()))(e)),
        };
        serde_json::from_slice(&bytes).map_err(|e| KeystoreError::Corrupt {
            path,
            reason: format!("it is not a public card: {e}"),
        })
    }
}

fn read_bounded(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    file.take(MAX_KEY_FILE + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_KEY_FILE {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("it is larger than {MAX_KEY_FILE} bytes"),
        ));
    }
    Ok(bytes)
}

fn create_private_dir(dir: &Path) -> Result<(), KeystoreError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .map_err(io_err(format!("cannot create keystore {}", dir.display())))
}

/// Writes `bytes` to a temporary file in `dir`, syncs it, sets `mode`, and
/// renames it to `path` (replacing an existing file only if `replace`).
fn write_atomically(
    dir: &Path,
    path: &Path,
    bytes: &[u8],
    mode: u32,
    replace: bool,
) -> std::io::Result<()> {
    let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))?;
    }
    #[cfg(not(unix))]
    let _ = mode;
    if replace {
        tmp.persist(path).map_err(|e| e.error)?;
    } else {
        tmp.persist_noclobber(path).map_err(|e| e.error)?;
    }
    // Make the rename itself durable.
    #[cfg(unix)]
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// Secrets taken out of the environment (see [`take_env_secret`]).
static TAKEN: std::sync::Mutex<Vec<(String, Zeroizing<String>)>> =
    std::sync::Mutex::new(Vec::new());

/// The secret in environment variable `name` (a passphrase), removed from
/// the environment the first time it is read, so that processes this one
/// starts do not inherit it and later reads of the environment do not find
/// it; later calls get the same value from memory (zeroized at exit).
/// Call it early in `main`, before other threads start. `Err` if it is not
/// UTF-8; `None` if unset or empty.
///
/// The kernel keeps the environment the process started with: on Linux it
/// is still in `/proc/<pid>/environ` for the process's owner and root.
/// Prefer a passphrase file (mode 0600) where that matters.
pub fn take_env_secret(name: &str) -> Result<Option<Zeroizing<String>>, std::ffi::OsString> {
    let mut taken = TAKEN.lock().expect("taken secrets lock");
    if let Some((_, v)) = taken.iter().find(|(n, _)| n == name) {
        return Ok(Some(v.clone()));
    }
    let Some(value) = std::env::var_os(name) else {
        return Ok(None);
    };
    std::env::remove_var(name);
    let value = Zeroizing::new(value.into_string()?);
    if value.is_empty() {
        return Ok(None);
    }
    taken.push((name.to_string(), value.clone()));
    Ok(Some(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Identity;
    use rr_core::PreScheme;
    use rr_pre::{Recrypt, Umbral};

    fn store() -> (tempfile::TempDir, Keystore) {
        let tmp = tempfile::tempdir().unwrap();
        let ks = Keystore::open_with_kdf(tmp.path().join("keys"), KdfParams::insecure_for_tests())
            .unwrap();
        (tmp, ks)
    }

    #[test]
    fn round_trip_keeps_the_identity_and_writes_the_card() {
        let (_tmp, ks) = store();
        let alice = RootIdentity::generate();
        let card = ks.create("alice", "pass", &alice).unwrap();
        assert_eq!(card, alice.card());
        assert_eq!(ks.public_card("alice").unwrap(), card);
        let loaded = ks.load("alice", "pass").unwrap();
        assert_eq!(loaded.account(), alice.account());
        assert_eq!(loaded.card(), card);
        for (a, b) in [
            (master(&loaded, &Umbral), master(&alice, &Umbral)),
            (master(&loaded, &Recrypt), master(&alice, &Recrypt)),
        ] {
            assert_eq!(*a, *b);
        }
        // Version 2, every scheme, and exactly the two 32-byte secrets.
        let bytes = std::fs::read(ks.key_path("alice")).unwrap();
        assert_eq!(bytes[8..12], [2, 0, 0, 0]);
        assert_eq!(bytes.len(), HEADER_LEN + 64 + TAG_LEN);
        assert_eq!(ks.list().unwrap(), vec!["alice".to_string()]);
        assert!(ks.contains("alice"));
        assert!(!ks.contains("bob"));
        // No temporary files are left behind.
        let mut files: Vec<_> = std::fs::read_dir(ks.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        files.sort();
        assert_eq!(files, ["alice.card.json", "alice.key"]);
    }

    #[cfg(unix)]
    #[test]
    fn key_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let (_tmp, ks) = store();
        ks.create("alice", "pass", &RootIdentity::generate())
            .unwrap();
        let mode = std::fs::metadata(ks.key_path("alice"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let mode = std::fs::metadata(ks.dir()).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "keystore directory readable by others");
    }

    #[test]
    fn wrong_passphrase_is_refused_and_changes_nothing() {
        let (_tmp, ks) = store();
        let alice = RootIdentity::generate();
        ks.create("alice", "right", &alice).unwrap();
        let before = std::fs::read(ks.key_path("alice")).unwrap();
        let card_before = std::fs::read(ks.card_path("alice")).unwrap();
        let err = ks.load("alice", "wrong").unwrap_err();
        assert!(matches!(err, KeystoreError::WrongPassphrase { .. }));
        assert_eq!(err.to_string(), "wrong passphrase for key alice");
        assert_eq!(std::fs::read(ks.key_path("alice")).unwrap(), before);
        assert_eq!(std::fs::read(ks.card_path("alice")).unwrap(), card_before);
        // The right passphrase still works afterwards.
        assert_eq!(
            ks.load("alice", "right").unwrap().account(),
            alice.account()
        );
    }

    #[test]
    fn unknown_name_lists_the_known_names() {
        let (_tmp, ks) = store();
        let err = ks.load("alice", "pass").unwrap_err();
        assert!(err.to_string().contains("holds no keys"), "{err}");
        ks.create("bob", "p", &RootIdentity::generate()).unwrap();
        ks.create("carol", "p", &RootIdentity::generate()).unwrap();
        let err = ks.load("alice", "pass").unwrap_err();
        assert!(matches!(err, KeystoreError::UnknownName { .. }));
        assert!(err.to_string().contains("known keys: bob, carol"), "{err}");
        let err = ks.public_card("alice").unwrap_err();
        assert!(err.to_string().contains("no key named alice"), "{err}");
    }

    #[test]
    fn bad_names_are_refused() {
        let (_tmp, ks) = store();
        let id = RootIdentity::generate();
        let long = "a".repeat(MAX_NAME_LEN + 1);
        for name in ["", "Alice", "a b", "../x", "a.key", "é", long.as_str()] {
            let err = ks.create(name, "p", &id).unwrap_err();
            assert!(
                matches!(err, KeystoreError::BadName { .. }),
                "{name}: {err}"
            );
            assert!(err.to_string().contains("invalid key name"), "{err}");
            assert!(matches!(
                ks.load(name, "p"),
                Err(KeystoreError::BadName { .. })
            ));
        }
        for name in ["a", "dr-bob_2", &"z".repeat(MAX_NAME_LEN)] {
            Keystore::validate_name(name).unwrap();
        }
        assert!(ks.list().unwrap().is_empty());
    }

    #[test]
    fn existing_names_are_never_overwritten() {
        let (_tmp, ks) = store();
        let first = RootIdentity::generate();
        ks.create("alice", "p", &first).unwrap();
        let before = std::fs::read(ks.key_path("alice")).unwrap();
        let err = ks
            .create("alice", "q", &RootIdentity::generate())
            .unwrap_err();
        assert!(matches!(err, KeystoreError::Exists { .. }), "{err}");
        assert_eq!(std::fs::read(ks.key_path("alice")).unwrap(), before);
        assert_eq!(ks.public_card("alice").unwrap(), first.card());
    }

    #[test]
    fn empty_passphrase_is_refused() {
        let (_tmp, ks) = store();
        let err = ks
            .create("alice", "", &RootIdentity::generate())
            .unwrap_err();
        assert!(matches!(err, KeystoreError::EmptyPassphrase));
        assert!(!ks.contains("alice"));
    }

    #[test]
    fn corrupt_files_are_reported_as_corrupt() {
        let (_tmp, ks) = store();
        ks.create("alice", "p", &RootIdentity::generate()).unwrap();
        let path = ks.key_path("alice");
        let good = std::fs::read(&path).unwrap();

        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"not a key file".to_vec(), "magic"),
            (good[..HEADER_LEN + 10].to_vec(), "truncated"),
            (
                {
                    let mut b = good.clone();
                    b[8] = 9; // version
                    b
                },
                "format version 9",
            ),
            (
                {
                    let mut b = good.clone();
                    b[13..17].copy_from_slice(&u32::MAX.to_le_bytes()); // memory
                    b
                },
                "memory",
            ),
            (
                {
                    let mut b = good.clone();
                    b[12] = 7; // kdf
                    b
                },
                "key derivation function",
            ),
        ];
        for (bytes, expect) in cases {
            std::fs::write(&path, &bytes).unwrap();
            let err = ks.load("alice", "p").unwrap_err();
            assert!(matches!(err, KeystoreError::Corrupt { .. }), "{err}");
            assert!(err.to_string().contains(expect), "{expect}: {err}");
        }

        // A flipped ciphertext byte cannot be told from a wrong passphrase.
        let mut flipped = good.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        std::fs::write(&path, &flipped).unwrap();
        assert!(matches!(
            ks.load("alice", "p"),
            Err(KeystoreError::WrongPassphrase { .. })
        ));

        // A scheme in a version 2 header is caught before decrypting...
        let mut other_scheme = good.clone();
        other_scheme[10] = 2;
        std::fs::write(&path, &other_scheme).unwrap();
        let err = ks.load("alice", "p").unwrap_err();
        assert!(matches!(err, KeystoreError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains("scheme field is 2"), "{err}");
        // ... a version 2 file relabelled version 1 fails authentication...
        let mut relabelled = good.clone();
        relabelled[8] = 1;
        relabelled[10] = 1;
        std::fs::write(&path, &relabelled).unwrap();
        assert!(matches!(
            ks.load("alice", "p"),
            Err(KeystoreError::WrongPassphrase { .. })
        ));
        // ... and a changed KDF parameter fails authentication.
        let mut weaker = good.clone();
        weaker[17..21].copy_from_slice(&2u32.to_le_bytes());
        std::fs::write(&path, &weaker).unwrap();
        assert!(matches!(
            ks.load("alice", "p"),
            Err(KeystoreError::WrongPassphrase { .. })
        ));

        std::fs::write(&path, &good).unwrap();
        ks.load("alice", "p").unwrap();

        std::fs::write(ks.card_path("alice"), b"{").unwrap();
        let err = ks.public_card("alice").unwrap_err();
        assert!(matches!(err, KeystoreError::Corrupt { .. }), "{err}");
        std::fs::remove_file(ks.card_path("alice")).unwrap();
        let err = ks.public_card("alice").unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
    }

    /// The master secret `identity` derives for `pre`.
    fn master<P: PreScheme>(identity: &RootIdentity, pre: &P) -> Zeroizing<Vec<u8>> {
        let id = identity.for_scheme(pre).unwrap();
        pre.master_to_bytes(id.master())
    }

    #[test]
    fn each_scheme_gets_its_own_master_derived_from_the_root_seed() {
        let (_tmp, ks) = store();
        let signing = [7u8; 32];
        let root = [9u8; 32];
        let alice = RootIdentity::from_root_bytes(&signing, &root);
        let (umbral, recrypt) = (master(&alice, &Umbral), master(&alice, &Recrypt));
        // Never the same secret bytes for two schemes, nor the root seed itself.
        assert_ne!(*umbral, *recrypt);
        assert_ne!(umbral[..], root[..]);
        assert_ne!(recrypt[..], root[..]);
        // The documented derivation.
        assert_eq!(
            umbral[..],
            blake3::derive_key("resilient-records keystore v2 umbral master", &root)[..]
        );
        assert_eq!(
            recrypt[..],
            blake3::derive_key("resilient-records keystore v2 recrypt master", &root)[..]
        );
        // The same key file gives the same keys every time it is opened.
        let card = ks.create("alice", "p", &alice).unwrap();
        let first = ks.load("alice", "p").unwrap();
        let second = ks.load("alice", "p").unwrap();
        for loaded in [&first, &second] {
            assert_eq!(*master(loaded, &Umbral), *umbral);
            assert_eq!(*master(loaded, &Recrypt), *recrypt);
            assert_eq!(loaded.card(), card);
        }
        // One account, one key per scheme on the card, each the scheme identity's.
        assert_eq!(card.account, alice.account());
        assert_eq!(card.schemes(), CLIENT_SCHEMES);
        assert_eq!(card.scheme(), SchemeId::UMBRAL);
        let umbral_id = first.for_scheme(&Umbral).unwrap();
        let recrypt_id = first.for_scheme(&Recrypt).unwrap();
        assert_eq!(umbral_id.account(), recrypt_id.account());
        assert_eq!(
            card.key_for(SchemeId::UMBRAL),
            umbral_id.card(&Umbral).key_for(SchemeId::UMBRAL)
        );
        assert_eq!(
            card.pre_public_key(),
            card.key_for(SchemeId::UMBRAL).unwrap()
        );
        assert_eq!(
            card.key_for(SchemeId::RECRYPT),
            recrypt_id.card(&Recrypt).key_for(SchemeId::RECRYPT)
        );
        assert_ne!(
            card.key_for(SchemeId::UMBRAL),
            card.key_for(SchemeId::RECRYPT)
        );
        // Another root seed, other keys.
        let other = RootIdentity::from_root_bytes(&signing, &[8u8; 32]);
        assert_ne!(*master(&other, &Umbral), *umbral);
        assert_ne!(*master(&other, &Recrypt), *recrypt);
    }

    #[test]
    fn version_1_files_still_open_for_their_one_scheme() {
        let (_tmp, ks) = store();
        // What rr wrote before per-record schemes: an umbral master as is.
        let old = Identity::generate(&Umbral);
        let (signing, umbral_master) = old.to_secret_bytes(&Umbral);
        let legacy =
            RootIdentity::from_single_scheme(&signing, Umbral::ID, &umbral_master).unwrap();
        let card = ks.create("old", "p", &legacy).unwrap();
        let bytes = std::fs::read(ks.key_path("old")).unwrap();
        assert_eq!(bytes[8..12], [1, 0, 1, 0], "version 1, umbral");
        assert_eq!(card, old.card(&Umbral), "an umbral-only card");

        let loaded = ks.load("old", "p").unwrap();
        assert_eq!(loaded.account(), old.account());
        assert_eq!(loaded.schemes(), [SchemeId::UMBRAL]);
        assert_eq!(*master(&loaded, &Umbral), *umbral_master);
        let err = loaded.for_scheme(&Recrypt).unwrap_err();
        assert!(
            matches!(err, crate::ClientError::NoSchemeKey { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("no recrypt key"), "{err}");
        assert!(err.to_string().contains("create a new key"), "{err}");

        // A version 1 file of a scheme this build has no client for.
        let mut other = bytes.clone();
        other[10] = 9;
        std::fs::write(ks.key_path("old"), &other).unwrap();
        let err = ks.load("old", "p").unwrap_err();
        assert!(matches!(err, KeystoreError::UnusableScheme { .. }), "{err}");
        assert!(err.to_string().contains("rr keys new"), "{err}");
    }

    #[test]
    fn default_parameters_are_the_documented_ones() {
        let kdf = KdfParams::default();
        assert_eq!(
            (kdf.memory_kib, kdf.iterations, kdf.parallelism),
            (46 * 1024, 1, 1)
        );
        kdf.validate().unwrap();
        assert!(KdfParams {
            memory_kib: 4,
            ..kdf
        }
        .validate()
        .is_err());
        assert!(KdfParams {
            iterations: 0,
            ..kdf
        }
        .validate()
        .is_err());
    }
}
