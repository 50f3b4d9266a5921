//! How a failure is told: one line on stderr saying what failed, why, and
//! what to do.

use std::fmt;

use rr_core::{BlobError, ErrorCode};
use rr_node::keystore::KeystoreError;
use rr_node::{ClientError, NodeError};

/// A failed command: what failed, why, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// What failed, such as "cannot read record 1a2b…".
    pub what: String,
    /// Why.
    pub why: String,
    /// What to do, if there is something to say.
    pub hint: Option<String>,
    /// The process exit code (never 0).
    pub exit_code: u8,
}

impl Failure {
    /// A failure of `what` because of `why`.
    pub fn new(what: impl Into<String>, why: impl fmt::Display) -> Self {
        Self {
            what: what.into(),
            why: why.to_string(),
            hint: None,
            exit_code: 1,
        }
    }

    /// Adds what to do.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// A failure of `what` caused by a client or node error, with the hint
    /// that error calls for.
    pub fn client(what: impl Into<String>, err: &ClientError, node: &str) -> Self {
        let why = match err {
            // The refusal's message says what and when; its code is for machines.
            ClientError::Node(NodeError::Refused(r)) => r.message.clone(),
            other => other.to_string(),
        };
        let mut f = Self::new(what, why);
        f.hint = client_hint(err, node);
        f
    }

    /// A failure of `what` caused by a keystore error.
    pub fn keystore(what: impl Into<String>, err: &KeystoreError) -> Self {
        let hint = match err {
            KeystoreError::WrongPassphrase { .. } => Some(
                "check the passphrase (RR_PASSPHRASE or the prompt) and try again".to_string(),
            ),
            KeystoreError::UnknownName { .. } => Some(
                "create one with `rr keys new NAME`, or point --keystore / RR_KEYSTORE at the right directory"
                    .to_string(),
            ),
            KeystoreError::Exists { .. } | KeystoreError::BadName { .. } => None,
            KeystoreError::EmptyPassphrase => {
                Some("set RR_PASSPHRASE or type a passphrase at the prompt".to_string())
            }
            KeystoreError::Corrupt { .. } => {
                Some("restore the key file from a backup".to_string())
            }
            _ => None,
        };
        let mut f = Self::new(what, err);
        f.hint = hint;
        f
    }
}

impl fmt::Display for Failure {
    /// `error: WHAT: WHY — HINT`, always on one line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut line = format!("error: {}: {}", self.what, self.why);
        if let Some(hint) = &self.hint {
            line.push_str(" — ");
            line.push_str(hint);
        }
        f.write_str(&one_line(&line))
    }
}

/// Folds whitespace runs (newlines included) into single spaces.
pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn client_hint(err: &ClientError, node: &str) -> Option<String> {
    let integrity = || {
        "the stored ciphertext failed its integrity check (damaged or tampered with); no output file was written; tell the node's operator".to_string()
    };
    let hint = match err {
        ClientError::Node(NodeError::Refused(r)) => return refusal_hint(r.code),
        ClientError::Node(NodeError::UnknownRecord(_) | NodeError::UnknownGrant(_)) => {
            "check the id; `rr --as NAME ls` lists your records and grants".to_string()
        }
        // The node stops sending a blob whose stored copy fails its check;
        // when that happens early the connection just closes.
        ClientError::Node(NodeError::Transport(m)) if m.contains("/v1/blobs/") => {
            download_broke_off()
        }
        // An answer whose certificate or proof failed: the node is not
        // believed, whatever it said.
        ClientError::Node(NodeError::Transport(m)) if m.contains("does not hold") => {
            format!("the answer from {node} failed rr's check against the replica keys it trusts, so it was not believed: the node is faulty or tampered with; tell its operator")
        }
        ClientError::Node(NodeError::Transport(_)) => {
            format!("check that a node is running at {node} (set it with --node or RR_NODE)")
        }
        ClientError::Node(NodeError::Unauthorized(_)) => {
            "check this machine's clock and the key given with --as".to_string()
        }
        ClientError::Node(NodeError::Forbidden(_)) | ClientError::NotOwner { .. } => {
            "only the record's owner can do this; check the key given with --as".to_string()
        }
        ClientError::Node(NodeError::Remote { code, .. }) if code == "integrity" => integrity(),
        ClientError::Node(NodeError::Blob(BlobError::Integrity { .. }))
        | ClientError::Blob(BlobError::Integrity { .. })
        | ClientError::Envelope(_) => integrity(),
        ClientError::Node(NodeError::FragmentMissing { .. }) => {
            "ask the record's owner to grant access again".to_string()
        }
        ClientError::SchemeMismatch { .. } => {
            "ask the grantee for a current card (`rr keys show NAME --json`): keys made by this rr have a key for every scheme; nothing was granted".to_string()
        }
        ClientError::NoSchemeKey { .. } => {
            "`rr keys new NAME` makes a key for every scheme; records of this key's scheme still work with it".to_string()
        }
        ClientError::Io { context, .. } if context.starts_with("reading the record") => {
            download_broke_off()
        }
        _ => return None,
    };
    Some(hint)
}

fn download_broke_off() -> String {
    "the node stopped sending the record's ciphertext, as it does when its stored copy fails its integrity check; no output file was written; try again, and tell the node's operator if it persists".to_string()
}

fn refusal_hint(code: ErrorCode) -> Option<String> {
    let hint = match code {
        ErrorCode::GrantRevoked | ErrorCode::GrantExpired => {
            "ask the record's owner for a new grant"
        }
        ErrorCode::NotOwner => "only the record's owner can do this; check the key given with --as",
        ErrorCode::NotGrantee => "use a grant made to your account; `rr --as NAME ls` lists them",
        ErrorCode::PurposeMismatch => "state the grant's purpose with --purpose",
        ErrorCode::UnknownRecord | ErrorCode::UnknownGrant => {
            "check the id; `rr --as NAME ls` lists your records and grants"
        }
        ErrorCode::ReplayedNonce => "try again",
        _ => return None,
    };
    Some(hint.to_string())
}

/// The one-line form of a clap error (clap prints usage over several lines).
pub fn from_clap(err: &clap::Error) -> Failure {
    let rendered = err.render().to_string();
    let mut why = Vec::new();
    let mut tip = String::new();
    for line in rendered.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line.starts_with("Usage:") || line.starts_with("For more information") {
            break;
        }
        match line.strip_prefix("tip: ") {
            Some(t) => tip = format!("{t}; "),
            None => why.push(line.strip_prefix("error: ").unwrap_or(line)),
        }
    }
    let why = if why.is_empty() {
        "invalid arguments".to_string()
    } else {
        why.join(" ")
    };
    Failure {
        what: "invalid command line".into(),
        why,
        hint: Some(format!("{tip}see `rr --help`")),
        exit_code: 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rr_core::{GrantId, Refusal};

    #[test]
    fn a_failure_is_one_line_with_what_why_and_hint() {
        let f = Failure::new("cannot read x", "line one\nline two").hint("do this");
        assert_eq!(
            f.to_string(),
            "error: cannot read x: line one line two — do this"
        );
        assert_eq!(f.exit_code, 1);
    }

    #[test]
    fn a_revoked_grant_says_what_to_do() {
        let err = ClientError::Node(NodeError::Refused(Refusal {
            code: ErrorCode::GrantRevoked,
            message: "grant 1a2b was revoked at height 4 (2026-01-01T00:00:00.000Z)".into(),
        }));
        let line = Failure::client("cannot read record 99", &err, "http://x").to_string();
        assert_eq!(
            line,
            "error: cannot read record 99: grant 1a2b was revoked at height 4 (2026-01-01T00:00:00.000Z) — ask the record's owner for a new grant"
        );
    }

    #[test]
    fn transport_and_integrity_failures_have_hints() {
        let err = ClientError::Node(NodeError::Transport("connection refused".into()));
        let line = Failure::client("cannot put", &err, "http://127.0.0.1:1").to_string();
        assert!(
            line.contains("node is running at http://127.0.0.1:1"),
            "{line}"
        );
        let err = ClientError::Node(NodeError::UnknownGrant(GrantId([1; 32])));
        let line = Failure::client("cannot revoke", &err, "n").to_string();
        assert!(line.contains("check the id"), "{line}");
        let err = ClientError::Node(NodeError::Transport(
            "error sending request for url (http://n/v1/blobs/bafk)".into(),
        ));
        let line = Failure::client("cannot read", &err, "n").to_string();
        assert!(line.contains("integrity check"), "{line}");
        assert!(!line.contains("node is running"), "{line}");
        let err = ClientError::Envelope(rr_pre::EnvelopeError::Corrupt { chunk: 0 });
        let line = Failure::client("cannot read", &err, "n").to_string();
        assert!(line.contains("integrity check"), "{line}");
        // An answer that failed its certificate or proof is not a node down.
        let err = ClientError::Node(NodeError::Transport(
            "no replica gave the record that holds: replica 0: its answer does not hold: bad signature"
                .into(),
        ));
        let line = Failure::client("cannot read", &err, "n").to_string();
        assert!(line.contains("not believed"), "{line}");
        assert!(!line.contains("node is running"), "{line}");
    }

    #[test]
    fn clap_errors_become_one_line() {
        use clap::Parser;
        let err = crate::cli::Cli::try_parse_from(["rr", "gte"]).unwrap_err();
        let f = from_clap(&err);
        assert_eq!(f.exit_code, 2);
        let line = f.to_string();
        assert!(!line.contains('\n'));
        assert!(line.starts_with("error: invalid command line: "), "{line}");
        assert!(line.contains("rr --help"), "{line}");

        let err = crate::cli::Cli::try_parse_from(["rr", "get", &"ab".repeat(32)]).unwrap_err();
        let line = from_clap(&err).to_string();
        assert!(line.contains("--output <FILE>"), "{line}");
        assert!(!line.contains("Usage"), "{line}");
    }
}
