//! What the commands print: JSON for scripts (`--json`), lines for people.

use rr_core::{AuditEntry, GrantInfo, GrantStatus, RecordInfo, Timestamp};
use serde_json::{json, Value};

/// Whether a grant works at `now`, and if not, why.
pub fn grant_state(grant: &GrantInfo, now: Timestamp) -> &'static str {
    match grant.status {
        GrantStatus::Revoked { .. } => "revoked",
        GrantStatus::Active if grant.expires_at.is_some_and(|e| now >= e) => "expired",
        GrantStatus::Active => "active",
    }
}

/// A grant as JSON.
pub fn grant_json(grant: &GrantInfo, now: Timestamp) -> Value {
    let (revoked_height, revoked_at) = match grant.status {
        GrantStatus::Revoked { at } => (Some(at.height), Some(at.time.to_string())),
        GrantStatus::Active => (None, None),
    };
    json!({
        "grant_id": grant.id.to_string(),
        "record_id": grant.record.to_string(),
        "owner": grant.owner.to_string(),
        "grantee": grant.grantee.to_string(),
        "purpose": grant.purpose.as_str(),
        "threshold": grant.threshold.to_string(),
        "expires_at": grant.expires_at.map(|t| t.to_string()),
        "granted_height": grant.granted.height,
        "granted_at": grant.granted.time.to_string(),
        "status": grant_state(grant, now),
        "revoked_height": revoked_height,
        "revoked_at": revoked_at,
    })
}

/// A record (and its grants, for the owner) as JSON.
pub fn record_json(record: &RecordInfo, grants: &[GrantInfo], now: Timestamp) -> Value {
    json!({
        "record_id": record.id.to_string(),
        "cid": record.cid.to_string(),
        "size": record.size,
        "media_type": record.media_type,
        "scheme": record.scheme.name(),
        "registered_height": record.registered.height,
        "registered_at": record.registered.time.to_string(),
        "audit_entries": record.audit_len,
        "grants": grants.iter().map(|g| grant_json(g, now)).collect::<Vec<_>>(),
    })
}

/// An audit entry as JSON: seq, height, time (RFC 3339), actor, action,
/// grant, purpose, outcome (`ok` or the refusal code).
pub fn audit_json(entry: &AuditEntry) -> Value {
    json!({
        "seq": entry.seq,
        "height": entry.at.height,
        "time": entry.at.time.to_string(),
        "actor": entry.actor.to_string(),
        "action": entry.action.as_str(),
        "grant": entry.grant.map(|g| g.to_string()),
        "purpose": entry.purpose.as_ref().map(|p| p.as_str()),
        "outcome": outcome(entry),
        "tx": entry.tx.to_string(),
    })
}

/// `ok`, or the refusal code.
pub fn outcome(entry: &AuditEntry) -> &str {
    entry.refused.as_ref().map_or("ok", |c| c.as_str())
}

/// One line of an audit trail for people.
pub fn audit_line(entry: &AuditEntry, actor: &str) -> String {
    format!(
        "#{:<3} height {:>5}  {}  {:<16} {:<8} grant {:<8} purpose {:<12} {}",
        entry.seq,
        entry.at.height,
        entry.at.time,
        actor,
        entry.action.as_str(),
        entry.grant.map(|g| g.short()).unwrap_or_else(|| "-".into()),
        entry.purpose.as_ref().map(|p| p.as_str()).unwrap_or("-"),
        match entry.refused {
            None => "ok".to_string(),
            Some(code) => format!("REFUSED ({code})"),
        }
    )
}

/// Prints `value` as JSON on stdout.
pub fn print_json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("a JSON value serializes")
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use rr_core::{
        AccountId, AuditAction, BlockContext, ErrorCode, GrantId, Purpose, RecordId, Threshold,
        TxId,
    };

    fn grant(status: GrantStatus, expires_at: Option<Timestamp>) -> GrantInfo {
        GrantInfo {
            id: GrantId([1; 32]),
            record: RecordId([2; 32]),
            owner: AccountId([3; 32]),
            grantee: AccountId([4; 32]),
            grantee_key: vec![],
            threshold: Threshold { m: 1, n: 1 },
            fragment_commitments: vec![],
            purpose: Purpose::new("treatment").unwrap(),
            expires_at,
            granted: BlockContext {
                height: 2,
                time: Timestamp(1_000),
            },
            status,
            erased_by: vec![],
            single_proxy: false,
        }
    }

    #[test]
    fn grant_states() {
        let now = Timestamp(5_000);
        assert_eq!(
            grant_state(&grant(GrantStatus::Active, None), now),
            "active"
        );
        assert_eq!(
            grant_state(&grant(GrantStatus::Active, Some(Timestamp(5_000))), now),
            "expired"
        );
        let revoked = grant(
            GrantStatus::Revoked {
                at: BlockContext {
                    height: 4,
                    time: Timestamp(2_000),
                },
            },
            None,
        );
        let j = grant_json(&revoked, now);
        assert_eq!(j["status"], "revoked");
        assert_eq!(j["revoked_height"], 4);
        assert_eq!(j["revoked_at"], "1970-01-01T00:00:02.000Z");
        assert_eq!(j["grant_id"], GrantId([1; 32]).to_string());
    }

    #[test]
    fn audit_entries_have_the_documented_fields() {
        let entry = AuditEntry {
            record: RecordId([2; 32]),
            seq: 4,
            at: BlockContext {
                height: 6,
                time: Timestamp(3_000),
            },
            tx: TxId([9; 32]),
            actor: AccountId([4; 32]),
            action: AuditAction::Retrieve,
            grant: Some(GrantId([1; 32])),
            purpose: Some(Purpose::new("treatment").unwrap()),
            refused: Some(ErrorCode::GrantRevoked),
        };
        let j = audit_json(&entry);
        assert_eq!(j["seq"], 4);
        assert_eq!(j["height"], 6);
        assert_eq!(j["time"], "1970-01-01T00:00:03.000Z");
        assert_eq!(j["actor"], AccountId([4; 32]).to_string());
        assert_eq!(j["action"], "retrieve");
        assert_eq!(j["grant"], GrantId([1; 32]).to_string());
        assert_eq!(j["purpose"], "treatment");
        assert_eq!(j["outcome"], "grant_revoked");
        assert!(audit_line(&entry, "bob").contains("REFUSED (grant_revoked)"));
    }
}
