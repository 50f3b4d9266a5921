//! The command line, as clap parses it.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use rr_core::{Purpose, SchemeId};
use rr_node::CLIENT_SCHEMES;

/// The node `rr` talks to unless told otherwise.
pub const DEFAULT_NODE: &str = "http://127.0.0.1:7700";

/// Resilient Records: keep health records encrypted on your side, share one
/// with a grant, take the grant back, and see every access in the audit trail.
#[derive(Debug, Parser)]
#[command(name = "rr", version, propagate_version = true)]
pub struct Cli {
    /// The node's URL, or the cluster.json `rr-node localnet` wrote (then
    /// rr talks to every replica of the cluster).
    #[arg(long, global = true, env = "RR_NODE", default_value = DEFAULT_NODE, value_name = "URL|FILE")]
    pub node: String,
    /// The keystore directory [default: ~/.config/resilient-records/keys].
    #[arg(long, global = true, env = "RR_KEYSTORE", value_name = "DIR")]
    pub keystore: Option<PathBuf>,
    /// Act as this key from the keystore. The passphrase comes from
    /// RR_PASSPHRASE or a prompt.
    #[arg(long = "as", global = true, env = "RR_AS", value_name = "NAME")]
    pub as_name: Option<String>,
    /// Print machine-readable JSON on stdout (and no progress bars).
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create, show and list keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Encrypt a file on this machine and register it as a record you own.
    Put {
        /// The file.
        file: PathBuf,
        /// Media type of the file.
        #[arg(long, default_value = "application/octet-stream", value_name = "TYPE")]
        media_type: String,
        /// Proxy re-encryption scheme of the record: umbral or recrypt
        /// [default: the node's default scheme].
        #[arg(long, value_parser = parse_scheme, value_name = "NAME")]
        scheme: Option<SchemeId>,
    },
    /// Grant someone access to one of your records.
    Grant {
        /// The record id.
        #[arg(value_parser = parse_id)]
        record: [u8; 32],
        /// Who: a public card file from `rr keys show NAME --json`, or the
        /// name of a key in the local keystore.
        #[arg(long, value_name = "GRANTEE")]
        to: String,
        /// How long the grant lasts, such as 30d, 12h or 90m [default: until revoked].
        #[arg(long, value_parser = parse_expiry, value_name = "DURATION")]
        expires: Option<Duration>,
        /// Purpose of use the grantee must state.
        #[arg(long, default_value = "treatment", value_parser = parse_purpose)]
        purpose: Purpose,
        /// Key fragments needed to re-encrypt, m [default: f + 1 of the node's replicas].
        #[arg(long, value_name = "M")]
        threshold: Option<u16>,
    },
    /// Read a record into a file: yours by its record id, or one granted to
    /// you by the grant id (or the record id).
    Get {
        /// A record id or a grant id.
        #[arg(value_parser = parse_id, value_name = "RECORD")]
        id: [u8; 32],
        /// Where to write the plaintext (only once it is fully checked).
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
        /// Purpose of use to state [default: the grant's].
        #[arg(long, value_parser = parse_purpose)]
        purpose: Option<Purpose>,
    },
    /// Revoke a grant you made.
    Revoke {
        /// The grant id.
        #[arg(value_parser = parse_id)]
        grant: [u8; 32],
    },
    /// List your records (with their grants) and the grants you hold.
    Ls,
    /// Deliver key fragments that replicas did not take when you granted
    /// (they were down); `rr grant` keeps them in the keystore's pending/.
    Redeliver,
    /// Show the audit trail of one of your records.
    Audit {
        /// The record id.
        #[arg(value_parser = parse_id)]
        record: [u8; 32],
    },
    /// Export a certified receipt to a file, or check one offline.
    #[command(subcommand)]
    Receipt(ReceiptCommand),
    /// The node keys rr pinned on first use (in the keystore's
    /// known_nodes.json).
    #[command(subcommand)]
    Trust(TrustCommand),
}

/// `rr receipt ...`.
#[derive(Debug, Subcommand)]
pub enum ReceiptCommand {
    /// Write a self-contained, certified proof to a file: a grant's state
    /// (anyone), a record with its whole audit trail (its owner, with --as),
    /// or a transaction's outcome (anyone), by id.
    Export {
        /// A grant id, a record id or a transaction id (64 hex digits).
        #[arg(value_parser = parse_id, value_name = "ID")]
        id: [u8; 32],
        /// The receipt file to write.
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
    },
    /// Check a receipt file offline (no node, no keystore) and say what it
    /// proves.
    Verify {
        /// The receipt file.
        file: PathBuf,
        /// Trust the replica set of this cluster.json (`rr-node localnet`
        /// writes it).
        #[arg(long, value_name = "FILE", conflicts_with = "key")]
        cluster: Option<PathBuf>,
        /// Trust this dev node's key (64 hex digits: `rr trust list` shows
        /// the keys rr pinned, `GET /v1/info` the node's own).
        #[arg(long, value_name = "HEX")]
        key: Option<String>,
    },
}

/// `rr trust ...`.
#[derive(Debug, Subcommand)]
pub enum TrustCommand {
    /// List the dev nodes whose keys rr pinned on first use.
    List,
    /// Forget a dev node's pinned key (and the newest state rr saw from
    /// it): the next command pins whatever key the node at URL presents.
    Forget {
        /// The node's URL, as given with --node or RR_NODE.
        #[arg(value_name = "URL")]
        url: String,
    },
}

/// `rr keys ...`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create an identity and its PRE master key, sealed with a passphrase.
    New {
        /// Name of the key: 1 to 64 characters of a-z, 0-9, '-', '_'.
        name: String,
    },
    /// Show a key's public card (what others grant to); no passphrase needed.
    Show {
        /// Name of the key.
        name: String,
    },
    /// List the keys in the keystore.
    List,
}

/// Parses a 32-byte id written as 64 hex digits.
pub fn parse_id(s: &str) -> Result<[u8; 32], String> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s.trim(), &mut out).map_err(|_| {
        "not an id: ids are 64 hex digits, as `rr put`, `rr grant` and `rr ls` print them"
            .to_string()
    })?;
    Ok(out)
}

/// Parses a duration such as `30d`, `12h`, `90m`; refuses zero.
pub fn parse_expiry(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim())
        .map_err(|e| format!("{e}; write a duration such as 30d, 12h or 90m"))?;
    if d.is_zero() {
        return Err("a grant cannot expire immediately; write a duration such as 30d".into());
    }
    if d > Duration::from_secs(100 * 365 * 24 * 3600) {
        return Err(
            "more than 100 years; omit --expires for a grant that lasts until revoked".into(),
        );
    }
    Ok(d)
}

/// Parses a scheme name this `rr` can use (`umbral`, `recrypt`).
pub fn parse_scheme(s: &str) -> Result<SchemeId, String> {
    rr_pre::scheme_by_name(s.trim())
        .filter(|id| CLIENT_SCHEMES.contains(id))
        .ok_or_else(|| {
            let names: Vec<&str> = CLIENT_SCHEMES.iter().map(|id| id.name()).collect();
            format!("unknown scheme; this rr knows {}", names.join(", "))
        })
}

/// Parses a purpose of use.
pub fn parse_purpose(s: &str) -> Result<Purpose, String> {
    Purpose::new(s).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use std::path::Path;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn the_issue_s_command_lines_parse() {
        let cli = Cli::try_parse_from([
            "rr",
            "--as",
            "alice",
            "grant",
            &"ab".repeat(32),
            "--to",
            "bob",
            "--expires",
            "30d",
            "--purpose",
            "treatment",
            "--json",
        ])
        .unwrap();
        assert_eq!(cli.as_name.as_deref(), Some("alice"));
        assert!(cli.json);
        match cli.command {
            Command::Grant {
                record,
                to,
                expires,
                purpose,
                threshold,
            } => {
                assert_eq!(record, [0xab; 32]);
                assert_eq!(to, "bob");
                assert_eq!(expires, Some(Duration::from_secs(30 * 24 * 3600)));
                assert_eq!(purpose.as_str(), "treatment");
                assert_eq!(threshold, None);
            }
            other => panic!("parsed as {other:?}"),
        }
        let cli = Cli::try_parse_from(["rr", "keys", "show", "bob", "--json"]).unwrap();
        assert!(cli.json);
        assert!(matches!(cli.command, Command::Keys(KeysCommand::Show { name }) if name == "bob"));
        let cli =
            Cli::try_parse_from(["rr", "--as", "bob", "get", &"01".repeat(32), "-o", "x"]).unwrap();
        assert!(
            matches!(cli.command, Command::Get { output, purpose: None, .. } if output == Path::new("x"))
        );
    }

    #[test]
    fn receipt_and_trust_commands_parse() {
        let id = "ab".repeat(32);
        let cli = Cli::try_parse_from(["rr", "receipt", "export", &id, "-o", "r.json"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Receipt(ReceiptCommand::Export { id, output }) if id == [0xab; 32] && output == Path::new("r.json")
        ));
        let cli = Cli::try_parse_from(["rr", "receipt", "verify", "r.json", "--key", &id]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Receipt(ReceiptCommand::Verify {
                cluster: None,
                key: Some(_),
                ..
            })
        ));
        // One trusted set at a time.
        assert!(Cli::try_parse_from([
            "rr",
            "receipt",
            "verify",
            "r.json",
            "--key",
            &id,
            "--cluster",
            "c.json"
        ])
        .is_err());
        let cli = Cli::try_parse_from(["rr", "trust", "forget", "http://127.0.0.1:7700"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Trust(TrustCommand::Forget { url }) if url == "http://127.0.0.1:7700"
        ));
    }

    #[test]
    fn durations_ids_and_purposes_are_checked() {
        assert_eq!(parse_expiry("12h").unwrap(), Duration::from_secs(12 * 3600));
        assert_eq!(parse_expiry("90m").unwrap(), Duration::from_secs(90 * 60));
        assert!(parse_expiry("0s").unwrap_err().contains("immediately"));
        assert!(parse_expiry("soon").unwrap_err().contains("30d"));
        assert!(parse_expiry("1000years").is_err());
        assert!(parse_id("zz").unwrap_err().contains("64 hex digits"));
        assert!(parse_id(&"ab".repeat(31)).is_err());
        assert_eq!(parse_id(&"AB".repeat(32)).unwrap(), [0xab; 32]);
        assert!(parse_purpose("Treatment!").unwrap_err().contains("purpose"));
        assert_eq!(parse_scheme("recrypt").unwrap(), SchemeId::RECRYPT);
        assert_eq!(parse_scheme("Umbral").unwrap(), SchemeId::UMBRAL);
        assert!(parse_scheme("nope")
            .unwrap_err()
            .contains("this rr knows umbral, recrypt"));
    }
}
