//! The native contracts: register, grant, retrieve, revoke, with an audit trail.

use rr_core::state::{keys, CountKind};
use std::sync::Arc;

use rr_core::{
    AccountId, AuditAction, AuditEntry, BlockContext, Call, CallOutput, ContractExecutor,
    ErrorCode, Execution, ExecutionError, GrantId, GrantInfo, GrantStatus, Outcome, Overlay,
    PolicyCode, Purpose, Receipt, RecordId, RecordInfo, Refusal, SchemeId, StateError, StateRead,
    Table, VerifiedTransaction,
};

/// Limits on what a call may carry, so the ledger stays small and no call can
/// make a replica allocate without bound.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ContractLimits {
    /// Largest record or grantee PRE public key, in bytes.
    pub max_key_bytes: usize,
    /// Largest capsule, in bytes.
    pub max_capsule_bytes: usize,
    /// Largest media type, in bytes.
    pub max_media_type_bytes: usize,
    /// Largest encrypted metadata, in bytes.
    pub max_metadata_bytes: usize,
}

impl Default for ContractLimits {
    fn default() -> Self {
        Self {
            max_key_bytes: 1024,
            max_capsule_bytes: 4096,
            max_media_type_bytes: 255,
            max_metadata_bytes: 16 * 1024,
        }
    }
}

/// Configuration of the contracts. Part of the replicated state machine: every
/// replica must run with the same values. Start from
/// [`ContractsConfig::default`] (one replica, Umbral) and set what differs.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ContractsConfig {
    /// Number of replicas n: every grant carries exactly n fragment commitments.
    pub replicas: u16,
    /// The account (ed25519 replica key) of each replica, in replica order:
    /// replica `i` confirms its erasures signed with `replica_accounts[i]`.
    /// Empty on a single dev node, which confirms nothing (its revocations
    /// erase before the `revoke` call answers).
    pub replica_accounts: Vec<rr_core::AccountId>,
    /// Schemes records may use.
    pub schemes: Vec<SchemeId>,
    /// Those of `schemes` that are single-proxy (threshold 1 only: any one
    /// replica holding a grant's key fragment can re-encrypt on its own).
    pub single_proxy_schemes: Vec<SchemeId>,
    /// Whether grants of single-proxy schemes are allowed on a ledger that
    /// tolerates Byzantine replicas (f >= 1). Default `false`: there one
    /// replica could serve the grantee alone, after a revocation too. A
    /// single dev node (f = 0) always allows them.
    pub allow_single_proxy: bool,
    /// Size limits.
    pub limits: ContractLimits,
}

impl Default for ContractsConfig {
    fn default() -> Self {
        Self {
            replicas: 1,
            replica_accounts: Vec::new(),
            schemes: vec![SchemeId::UMBRAL],
            single_proxy_schemes: Vec::new(),
            allow_single_proxy: false,
            limits: ContractLimits::default(),
        }
    }
}

impl ContractsConfig {
    /// Byzantine replicas the ledger tolerates, f = (n - 1) / 3.
    pub fn faults_tolerated(&self) -> u16 {
        self.replicas.saturating_sub(1) / 3
    }

    /// The smallest threshold m a grant may have: f + 1, so that the f
    /// replicas that may be Byzantine cannot re-encrypt on their own.
    pub fn min_threshold(&self) -> u16 {
        self.faults_tolerated() + 1
    }

    /// Whether a grant of a record of `scheme` is refused as single-proxy.
    pub fn refuses_single_proxy(&self, scheme: SchemeId) -> bool {
        self.single_proxy_schemes.contains(&scheme)
            && self.faults_tolerated() >= 1
            && !self.allow_single_proxy
    }
}

/// The native contracts, as a [`ContractExecutor`].
///
/// Rules:
/// - a nonce a signer used before is refused (`replayed_nonce`) and leaves no
///   trace: a replay is not a new act of its signer;
/// - only the owner registers (the record id derives from the signer), grants
///   and revokes; only the grantee retrieves, for the grant's purpose, while the
///   grant is active and unexpired at block time;
/// - a grant's threshold is m of n with n the number of replicas and, on a
///   cluster, m >= f + 1 (`threshold_too_low`); a grant of a single-proxy
///   scheme on a cluster with f >= 1 is refused (`single_proxy_refused`)
///   unless the operator allowed them;
/// - a replica confirms its erasure of a grant's key fragment once the grant
///   is revoked or expired;
/// - the listings (records of an owner, grants of a record, grants held by an
///   account) are counted: entry `i` of each, and its count, are state entries
///   of their own, so a proof of a listing proves it complete;
/// - every call on an existing record, refused ones included, appends an audit
///   entry (who, what, when, purpose, outcome) to that record's trail.
///
/// Policies added with [`NativeContracts::with_policy`] run first, on every
/// register, grant and retrieve call whose nonce is fresh, in the order they
/// were added; the first refusal wins and is booked like any other (see
/// [`Policy`]).
#[derive(Clone, Debug, Default)]
pub struct NativeContracts {
    config: ContractsConfig,
    policies: Policies,
    /// Decoders of the allowed schemes' keys and capsules.
    schemes: Arc<rr_pre::Schemes>,
}

/// Contract policies, in the order they run (see [`Policy`]): what
/// `DevConfig` and `ClusterConfig` carry to the node's contracts.
#[derive(Clone, Default)]
pub struct Policies(Vec<Arc<dyn Policy>>);

impl Policies {
    /// No policies: the native contracts alone.
    pub fn new() -> Self {
        Self::default()
    }

    /// These policies and `policy` after them.
    pub fn with(mut self, policy: impl Policy) -> Self {
        self.0.push(Arc::new(policy));
        self
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Policies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Policies({})", self.0.len())
    }
}

impl NativeContracts {
    /// Contracts with `config`.
    pub fn new(config: ContractsConfig) -> Self {
        Self {
            config,
            policies: Policies::default(),
            schemes: Arc::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ContractsConfig {
        &self.config
    }

    /// These contracts checking keys and capsules with `schemes` instead of
    /// every scheme compiled in ([`rr_pre::Schemes::all`], the default): for
    /// a scheme of your own. Every scheme `ContractsConfig::schemes` allows
    /// must be in it, or records of that scheme are refused
    /// (`scheme_mismatch`); node assembly checks this.
    pub fn with_schemes(mut self, schemes: Arc<rr_pre::Schemes>) -> Self {
        self.schemes = schemes;
        self
    }

    /// The schemes whose keys and capsules the contracts can check.
    pub fn schemes(&self) -> &rr_pre::Schemes {
        &self.schemes
    }

    /// These contracts with `policy` in front of them (after any added
    /// before): like a tower `Layer`, it sees each call first and may refuse
    /// it with its own code; the native rules run only on what it allows.
    ///
    /// Every replica must run the same policies, as it runs the same
    /// configuration: a policy is part of the replicated state machine.
    pub fn with_policy(mut self, policy: impl Policy) -> Self {
        self.policies = self.policies.with(policy);
        self
    }

    /// These contracts with `policies` in front of them (after any added
    /// before).
    pub fn with_policies(mut self, policies: Policies) -> Self {
        self.policies.0.extend(policies.0);
        self
    }

    /// The installed policies.
    pub fn policies(&self) -> &Policies {
        &self.policies
    }

    /// The first refusal of the installed policies, if any.
    fn policy_refusal(
        &self,
        state: &dyn StateRead,
        ctx: &BlockContext,
        tx: &VerifiedTransaction,
    ) -> Result<Option<Refusal>, StateError> {
        if !PolicyCall::is_subject(tx) {
            return Ok(None);
        }
        let call = PolicyCall {
            tx,
            block: *ctx,
            state,
        };
        for p in &self.policies.0 {
            if let Verdict::Refuse(r) = p.check(&call)? {
                return Ok(Some(r));
            }
        }
        Ok(None)
    }
}

/// A rule of an integrator's own, checked before the native contracts: a
/// purpose allow-list, office hours for some grantees, a cap on grants per
/// record. Install it with [`NativeContracts::with_policy`].
///
/// A policy sees register, grant and retrieve calls (never revocations or
/// erasure confirmations: taking access back is the owner's right, not a
/// policy decision), after the signature and nonce checks, with the state as
/// the block's earlier calls left it. A refusal is booked like the native
/// ones: the call's nonce is spent, an entry with the refusal's code is
/// appended to the audit trail of the record the call concerns (if it
/// exists), and the refused receipt carries [`ErrorCode::Policy`] with the
/// policy's code, which clients see over HTTP and in the SDK as it is.
///
/// A policy is part of the replicated state machine: it must be a pure
/// function of the call, the state and the block context (no clocks, files,
/// randomness or network), and every replica must run the same policies,
/// or replicas disagree and the ledger stops.
///
/// ```
/// use rr_core::{Call, PolicyCode, Refusal};
/// use rr_node::contracts::{NativeContracts, Policy, PolicyCall, Verdict};
///
/// /// Grants only for treatment or research.
/// struct Purposes(PolicyCode);
///
/// impl Policy for Purposes {
///     fn check(&self, call: &PolicyCall<'_>) -> Result<Verdict, rr_core::StateError> {
///         Ok(match call.call() {
///             Call::Grant(g) if !matches!(g.purpose.as_str(), "treatment" | "research") => {
///                 Verdict::refuse(self.0, format!("purpose \"{}\" is not allowed here", g.purpose))
///             }
///             _ => Verdict::Allow,
///         })
///     }
/// }
///
/// let contracts = NativeContracts::default()
///     .with_policy(Purposes(PolicyCode::new("purpose_not_allowed").unwrap()));
/// ```
pub trait Policy: Send + Sync + 'static {
    /// Allows or refuses `call`. An `Err` means the state could not be read
    /// (the engine stops rather than skip the block), never a refusal.
    fn check(&self, call: &PolicyCall<'_>) -> Result<Verdict, StateError>;
}

impl<F> Policy for F
where
    F: Fn(&PolicyCall<'_>) -> Result<Verdict, StateError> + Send + Sync + 'static,
{
    fn check(&self, call: &PolicyCall<'_>) -> Result<Verdict, StateError> {
        self(call)
    }
}

/// A policy's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The native contracts decide.
    Allow,
    /// Refused, with this refusal (its code is usually
    /// [`ErrorCode::Policy`]).
    Refuse(Refusal),
}

impl Verdict {
    /// A refusal with the policy's own `code` and a message that says what
    /// to do.
    pub fn refuse(code: PolicyCode, message: impl Into<String>) -> Self {
        Verdict::Refuse(Refusal {
            code: ErrorCode::Policy(code),
            message: message.into(),
        })
    }
}

/// One call as a [`Policy`] sees it: verified (signature and nonce), with
/// the state as the block's earlier calls left it.
pub struct PolicyCall<'a> {
    tx: &'a VerifiedTransaction,
    block: BlockContext,
    state: &'a dyn StateRead,
}

impl<'a> PolicyCall<'a> {
    fn is_subject(tx: &VerifiedTransaction) -> bool {
        matches!(
            tx.body().call,
            Call::RegisterRecord(_) | Call::Grant(_) | Call::Retrieve(_)
        )
    }

    /// The signed transaction.
    pub fn tx(&self) -> &'a VerifiedTransaction {
        self.tx
    }

    /// The call.
    pub fn call(&self) -> &'a Call {
        &self.tx.body().call
    }

    /// Who signed it.
    pub fn signer(&self) -> AccountId {
        self.tx.signer()
    }

    /// The block being executed (height and block time: the only clock a
    /// policy may use).
    pub fn block(&self) -> BlockContext {
        self.block
    }

    /// The state before this call.
    pub fn state(&self) -> &'a dyn StateRead {
        self.state
    }

    /// A record, from the state.
    pub fn record(&self, id: &RecordId) -> Result<Option<RecordInfo>, StateError> {
        get_record(self.state, id)
    }

    /// A grant, from the state.
    pub fn grant(&self, id: &GrantId) -> Result<Option<GrantInfo>, StateError> {
        get_grant(self.state, id)
    }
}

impl std::fmt::Debug for PolicyCall<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyCall")
            .field("tx", &self.tx.id())
            .field("call", &self.tx.body().call.name())
            .field("block", &self.block)
            .finish()
    }
}

/// The record a call concerns and how its audit entry reads, if the record
/// exists: what a refusal of the call appends to.
type AuditSubject = (RecordId, AuditAction, Option<GrantId>, Option<Purpose>);

fn audit_subject(
    state: &dyn StateRead,
    tx: &VerifiedTransaction,
) -> Result<Option<AuditSubject>, StateError> {
    let grant_record = |id: &GrantId| -> Result<Option<(RecordId, GrantId)>, StateError> {
        Ok(get_grant(state, id)?.map(|g| (g.record, g.id)))
    };
    Ok(match &tx.body().call {
        Call::RegisterRecord(c) => {
            let id = RecordId::derive(&tx.signer(), &c.salt);
            get_record(state, &id)?.map(|r| (r.id, AuditAction::Register, None, None))
        }
        Call::Grant(c) => get_record(state, &c.record)?
            .map(|r| (r.id, AuditAction::Grant, None, Some(c.purpose.clone()))),
        Call::Retrieve(c) => grant_record(&c.grant)?
            .map(|(r, g)| (r, AuditAction::Retrieve, Some(g), Some(c.purpose.clone()))),
        Call::Revoke(c) => {
            grant_record(&c.grant)?.map(|(r, g)| (r, AuditAction::Revoke, Some(g), None))
        }
        Call::ConfirmErasure(c) => {
            grant_record(&c.grant)?.map(|(r, g)| (r, AuditAction::ConfirmErasure, Some(g), None))
        }
        _ => None,
    })
}

/// The bookkeeping of a refused call, for a [`ContractExecutor`] of your
/// own: spends the call's nonce (a refused call cannot be replayed) and
/// appends an audit entry with the refusal's code to the trail of the record
/// the call concerns (if it exists). Writes go to `state`; the receipt to
/// put at `index` of the block is returned. A call whose nonce was spent
/// already is a replay: it gets a `replayed_nonce` receipt and no audit
/// entry, whatever `refusal` says.
pub fn refuse_call<'s>(
    state: &mut Overlay<'s, dyn StateRead + 's>,
    ctx: &BlockContext,
    index: u32,
    tx: &VerifiedTransaction,
    refusal: Refusal,
) -> Result<Receipt, StateError> {
    let outcome = if !state.spend_nonce(tx)? {
        Outcome::Refused(replayed(tx))
    } else {
        let mut step = Step {
            audit: audit_subject(&*state, tx)?,
            state,
            ctx: *ctx,
            tx,
        };
        step.append_audit(Some(refusal.code))?;
        Outcome::Refused(refusal)
    };
    Ok(Receipt {
        tx: tx.id(),
        context: *ctx,
        index,
        outcome,
    })
}

fn replayed(tx: &VerifiedTransaction) -> Refusal {
    refuse(
        ErrorCode::ReplayedNonce,
        format!(
            "nonce {} was already used by account {}: this call is a replay and was ignored",
            tx.body().nonce,
            tx.signer()
        ),
    )
}

fn refuse(code: ErrorCode, message: impl Into<String>) -> Refusal {
    Refusal {
        code,
        message: message.into(),
    }
}

fn get_record(s: &dyn StateRead, id: &RecordId) -> Result<Option<RecordInfo>, StateError> {
    s.get(Table::Records, &keys::record(id))?
        .map(|b| RecordInfo::from_bytes(&b).map_err(StateError::from))
        .transpose()
}

fn get_grant(s: &dyn StateRead, id: &GrantId) -> Result<Option<GrantInfo>, StateError> {
    s.get(Table::Grants, &keys::grant(id))?
        .map(|b| GrantInfo::from_bytes(&b).map_err(StateError::from))
        .transpose()
}

/// Appends `member` to the counted listing `kind` of `id` (`table` holds its
/// entries): entry `count` is written and the count bumped.
fn append_listing(
    state: &mut Overlay<'_, dyn StateRead + '_>,
    kind: CountKind,
    id: &[u8; 32],
    table: Table,
    entry_key: impl FnOnce(u64) -> Vec<u8>,
    member: &[u8; 32],
) -> Result<(), StateError> {
    let count_key = keys::count(kind, id);
    let n = keys::decode_count(state.get(Table::Counts, &count_key)?.as_deref())?;
    state.writes.put(table, entry_key(n), member.to_vec());
    state
        .writes
        .put(Table::Counts, count_key, keys::count_value(n + 1));
    Ok(())
}

/// Executes one call against the overlay. `Ok(Err(refusal))` is a refused
/// call; the audit entry (if any) is written by the caller.
struct Step<'o, 's> {
    state: &'o mut Overlay<'s, dyn StateRead + 's>,
    ctx: BlockContext,
    tx: &'o VerifiedTransaction,
    /// The record the call concerns, once known to exist: its trail gets the entry.
    audit: Option<(RecordId, AuditAction, Option<GrantId>, Option<Purpose>)>,
}

impl Step<'_, '_> {
    fn append_audit(&mut self, refused: Option<ErrorCode>) -> Result<(), StateError> {
        let Some((record_id, action, grant, purpose)) = self.audit.take() else {
            return Ok(());
        };
        let mut record = get_record(self.state, &record_id)?
            .ok_or_else(|| StateError::Storage(format!("audited record {record_id} vanished")))?;
        let entry = AuditEntry {
            record: record_id,
            seq: record.audit_len,
            at: self.ctx,
            tx: self.tx.id(),
            actor: self.tx.signer(),
            action,
            grant,
            purpose,
            refused,
        };
        record.audit_len += 1;
        self.state.writes.put(
            Table::Audit,
            keys::audit(&record_id, entry.seq),
            entry.to_bytes(),
        );
        self.state
            .writes
            .put(Table::Records, keys::record(&record_id), record.to_bytes());
        Ok(())
    }
}

impl NativeContracts {
    fn run(&self, step: &mut Step<'_, '_>) -> Result<Result<CallOutput, Refusal>, StateError> {
        let signer = step.tx.signer();
        let ctx = step.ctx;
        let limits = &self.config.limits;
        match &step.tx.body().call {
            Call::RegisterRecord(c) => {
                let id = RecordId::derive(&signer, &c.salt);
                if let Some(existing) = get_record(step.state, &id)? {
                    step.audit = Some((id, AuditAction::Register, None, None));
                    return Ok(Err(refuse(
                        ErrorCode::RecordExists,
                        format!(
                            "record {id} was already registered at height {} ({}); use a fresh salt",
                            existing.registered.height, existing.registered.time
                        ),
                    )));
                }
                if !self.config.schemes.contains(&c.scheme) {
                    return Ok(Err(refuse(
                        ErrorCode::SchemeMismatch,
                        format!(
                            "scheme {} is not served by this ledger (it serves {:?})",
                            c.scheme, self.config.schemes
                        ),
                    )));
                }
                let checks = [
                    (
                        c.record_key.is_empty() || c.record_key.len() > limits.max_key_bytes,
                        "record key",
                    ),
                    (
                        c.capsule.is_empty() || c.capsule.len() > limits.max_capsule_bytes,
                        "capsule",
                    ),
                    (
                        c.media_type.len() > limits.max_media_type_bytes,
                        "media type",
                    ),
                    (
                        c.encrypted_metadata
                            .as_ref()
                            .is_some_and(|m| m.len() > limits.max_metadata_bytes),
                        "encrypted metadata",
                    ),
                ];
                if let Some((_, what)) = checks.iter().find(|(bad, _)| *bad) {
                    return Ok(Err(refuse(
                        ErrorCode::InvalidCall,
                        format!("the {what} is empty or over its size limit"),
                    )));
                }
                let Some(scheme) = self.schemes.get(c.scheme) else {
                    return Ok(Err(refuse(
                        ErrorCode::SchemeMismatch,
                        format!(
                            "scheme {} is allowed but these contracts cannot check its keys (NativeContracts::with_schemes)",
                            c.scheme
                        ),
                    )));
                };
                if let Err(e) = scheme.check_record(&c.record_key, &c.capsule) {
                    return Ok(Err(refuse(
                        ErrorCode::InvalidCall,
                        format!(
                            "the record key and capsule must be a {} record key and a capsule made for it: {e}",
                            scheme.name()
                        ),
                    )));
                }
                let record = RecordInfo {
                    id,
                    owner: signer,
                    cid: c.cid,
                    size: c.size,
                    scheme: c.scheme,
                    record_key: c.record_key.clone(),
                    capsule: c.capsule.clone(),
                    media_type: c.media_type.clone(),
                    encrypted_metadata: c.encrypted_metadata.clone(),
                    registered: ctx,
                    audit_len: 0,
                };
                step.state
                    .writes
                    .put(Table::Records, keys::record(&id), record.to_bytes());
                append_listing(
                    step.state,
                    CountKind::OwnerRecords,
                    &signer.0,
                    Table::OwnerRecords,
                    |i| keys::owner_record(&signer, i),
                    &id.0,
                )?;
                step.audit = Some((id, AuditAction::Register, None, None));
                Ok(Ok(CallOutput::Registered { record: id }))
            }
            Call::Grant(c) => {
                let Some(record) = get_record(step.state, &c.record)? else {
                    return Ok(Err(refuse(
                        ErrorCode::UnknownRecord,
                        format!("no record {} on this ledger", c.record),
                    )));
                };
                step.audit = Some((record.id, AuditAction::Grant, None, Some(c.purpose.clone())));
                if record.owner != signer {
                    return Ok(Err(refuse(
                        ErrorCode::NotOwner,
                        format!(
                            "account {signer} does not own record {}; only its owner can grant access",
                            record.id
                        ),
                    )));
                }
                let n = self.config.replicas;
                let t = c.threshold;
                if t.n != n || t.m == 0 || t.m > t.n {
                    return Ok(Err(refuse(
                        ErrorCode::InvalidCall,
                        format!("threshold {t} is invalid: this ledger has {n} replicas, so n must be {n} and 1 <= m <= n"),
                    )));
                }
                let single_proxy = self.config.single_proxy_schemes.contains(&record.scheme);
                if self.config.refuses_single_proxy(record.scheme) {
                    return Ok(Err(refuse(
                        ErrorCode::SingleProxyRefused,
                        format!(
                            "record {} uses {}, a single-proxy scheme: on this cluster of {n} replicas any one of them could re-encrypt for the grantee on its own, even after a revocation; its operator has not allowed such grants (allow_single_proxy)",
                            record.id,
                            record.scheme.name()
                        ),
                    )));
                }
                let min = self.config.min_threshold();
                if !single_proxy && t.m < min {
                    return Ok(Err(refuse(
                        ErrorCode::ThresholdTooLow,
                        format!(
                            "threshold {t} is too low: this ledger tolerates {} Byzantine replicas, so m must be at least {min}, or they could re-encrypt for the grantee on their own",
                            self.config.faults_tolerated()
                        ),
                    )));
                }
                if c.fragment_commitments.len() != usize::from(n) {
                    return Ok(Err(refuse(
                        ErrorCode::InvalidCall,
                        format!(
                            "the grant carries {} fragment commitments; it needs one per replica ({n})",
                            c.fragment_commitments.len()
                        ),
                    )));
                }
                if c.grantee_key.is_empty() || c.grantee_key.len() > limits.max_key_bytes {
                    return Ok(Err(refuse(
                        ErrorCode::InvalidCall,
                        "the grantee key is empty or over its size limit",
                    )));
                }
                // The record's scheme was checked when it was registered.
                if let Some(Err(e)) = self
                    .schemes
                    .get(record.scheme)
                    .map(|s| s.check_account_key(&c.grantee_key))
                {
                    return Ok(Err(refuse(
                        ErrorCode::InvalidCall,
                        format!(
                            "the grantee key must be a {} account key (the grantee's card has it): {e}",
                            record.scheme.name()
                        ),
                    )));
                }
                if let Some(exp) = c.expires_at {
                    if exp <= ctx.time {
                        return Ok(Err(refuse(
                            ErrorCode::InvalidCall,
                            format!("expiry {exp} is not after the block time {}", ctx.time),
                        )));
                    }
                }
                let id = GrantId::derive(&step.tx.id());
                let grant = GrantInfo {
                    id,
                    record: record.id,
                    owner: signer,
                    grantee: c.grantee,
                    grantee_key: c.grantee_key.clone(),
                    threshold: t,
                    fragment_commitments: c.fragment_commitments.clone(),
                    purpose: c.purpose.clone(),
                    expires_at: c.expires_at,
                    granted: ctx,
                    status: GrantStatus::Active,
                    erased_by: Vec::new(),
                    single_proxy,
                };
                step.state
                    .writes
                    .put(Table::Grants, keys::grant(&id), grant.to_bytes());
                append_listing(
                    step.state,
                    CountKind::RecordGrants,
                    &record.id.0,
                    Table::RecordGrants,
                    |i| keys::record_grant(&record.id, i),
                    &id.0,
                )?;
                append_listing(
                    step.state,
                    CountKind::GranteeGrants,
                    &c.grantee.0,
                    Table::GranteeGrants,
                    |i| keys::grantee_grant(&c.grantee, i),
                    &id.0,
                )?;
                step.audit = Some((
                    record.id,
                    AuditAction::Grant,
                    Some(id),
                    Some(c.purpose.clone()),
                ));
                Ok(Ok(CallOutput::Granted { grant: id }))
            }
            Call::Retrieve(c) => {
                let Some(grant) = get_grant(step.state, &c.grant)? else {
                    return Ok(Err(refuse(
                        ErrorCode::UnknownGrant,
                        format!("no grant {} on this ledger", c.grant),
                    )));
                };
                step.audit = Some((
                    grant.record,
                    AuditAction::Retrieve,
                    Some(grant.id),
                    Some(c.purpose.clone()),
                ));
                if grant.grantee != signer {
                    return Ok(Err(refuse(
                        ErrorCode::NotGrantee,
                        format!(
                            "grant {} was made to another account; account {signer} cannot use it",
                            grant.id
                        ),
                    )));
                }
                if let Some(r) = usability(&grant, ctx) {
                    return Ok(Err(r));
                }
                if c.purpose != grant.purpose {
                    return Ok(Err(refuse(
                        ErrorCode::PurposeMismatch,
                        format!(
                            "grant {} is for purpose \"{}\", not \"{}\"",
                            grant.id, grant.purpose, c.purpose
                        ),
                    )));
                }
                Ok(Ok(CallOutput::Retrieved {
                    record: grant.record,
                    grant: grant.id,
                }))
            }
            Call::Revoke(c) => {
                let Some(mut grant) = get_grant(step.state, &c.grant)? else {
                    return Ok(Err(refuse(
                        ErrorCode::UnknownGrant,
                        format!("no grant {} on this ledger", c.grant),
                    )));
                };
                step.audit = Some((grant.record, AuditAction::Revoke, Some(grant.id), None));
                if grant.owner != signer {
                    return Ok(Err(refuse(
                        ErrorCode::NotOwner,
                        format!(
                            "account {signer} does not own record {}; only its owner can revoke grant {}",
                            grant.record, grant.id
                        ),
                    )));
                }
                if let GrantStatus::Revoked { at } = grant.status {
                    return Ok(Err(refuse(
                        ErrorCode::GrantRevoked,
                        format!(
                            "grant {} was already revoked at height {} ({})",
                            grant.id, at.height, at.time
                        ),
                    )));
                }
                grant.status = GrantStatus::Revoked { at: ctx };
                step.state
                    .writes
                    .put(Table::Grants, keys::grant(&grant.id), grant.to_bytes());
                Ok(Ok(CallOutput::Revoked { grant: grant.id }))
            }
            Call::ConfirmErasure(c) => {
                let me = self.config.replica_accounts.get(usize::from(c.replica.0));
                if me != Some(&signer) {
                    return Ok(Err(refuse(
                        ErrorCode::NotReplica,
                        format!(
                            "account {signer} is not replica {} of this ledger; only a replica confirms its own erasures",
                            c.replica.0
                        ),
                    )));
                }
                let Some(mut grant) = get_grant(step.state, &c.grant)? else {
                    return Ok(Err(refuse(
                        ErrorCode::UnknownGrant,
                        format!("no grant {} on this ledger", c.grant),
                    )));
                };
                step.audit = Some((
                    grant.record,
                    AuditAction::ConfirmErasure,
                    Some(grant.id),
                    None,
                ));
                let expired = grant.expires_at.is_some_and(|e| ctx.time >= e);
                if !matches!(grant.status, GrantStatus::Revoked { .. }) && !expired {
                    return Ok(Err(refuse(
                        ErrorCode::InvalidCall,
                        format!(
                            "grant {} is neither revoked nor expired: there is no erasure to confirm",
                            grant.id
                        ),
                    )));
                }
                if let Err(at) = grant.erased_by.binary_search(&c.replica) {
                    grant.erased_by.insert(at, c.replica);
                } else {
                    return Ok(Err(refuse(
                        ErrorCode::InvalidCall,
                        format!(
                            "replica {} already confirmed its erasure for grant {}",
                            c.replica.0, grant.id
                        ),
                    )));
                }
                step.state
                    .writes
                    .put(Table::Grants, keys::grant(&grant.id), grant.to_bytes());
                Ok(Ok(CallOutput::ErasureConfirmed {
                    grant: grant.id,
                    replica: c.replica,
                }))
            }
            // `Call` is non-exhaustive: a call of a newer rr-core.
            other => Ok(Err(refuse(
                ErrorCode::InvalidCall,
                format!("this ledger does not execute {} calls", other.name()),
            ))),
        }
    }
}

/// Why a grant cannot be used at `ctx`, if it cannot.
pub fn usability(grant: &GrantInfo, ctx: BlockContext) -> Option<Refusal> {
    if let GrantStatus::Revoked { at } = grant.status {
        return Some(refuse(
            ErrorCode::GrantRevoked,
            format!(
                "grant {} was revoked at height {} ({})",
                grant.id, at.height, at.time
            ),
        ));
    }
    if let Some(exp) = grant.expires_at {
        if ctx.time >= exp {
            return Some(refuse(
                ErrorCode::GrantExpired,
                format!("grant {} expired at {exp}", grant.id),
            ));
        }
    }
    None
}

impl ContractExecutor for NativeContracts {
    fn execute(
        &self,
        state: &dyn StateRead,
        ctx: &BlockContext,
        txs: &[VerifiedTransaction],
    ) -> Result<Execution, ExecutionError> {
        let mut overlay: Overlay<'_, dyn StateRead> = Overlay::new(state);
        let mut receipts = Vec::with_capacity(txs.len());
        for (index, tx) in txs.iter().enumerate() {
            let outcome = if overlay.nonce_spent(tx)? {
                Outcome::Refused(replayed(tx))
            } else if let Some(refusal) = self.policy_refusal(&overlay, ctx, tx)? {
                let receipt = refuse_call(&mut overlay, ctx, index as u32, tx, refusal)?;
                receipts.push(receipt);
                continue;
            } else {
                // The nonce is spent whatever the outcome, so a refused call
                // cannot be replayed to flood the audit trail.
                overlay.spend_nonce(tx)?;
                let mut step = Step {
                    state: &mut overlay,
                    ctx: *ctx,
                    tx,
                    audit: None,
                };
                // `run` decides before it writes: a refusal returns before any
                // write, so a refused call changes nothing but its nonce and
                // its audit entry.
                let result = self.run(&mut step)?;
                let refused = result.as_ref().err().map(|r| r.code);
                step.append_audit(refused)?;
                match result {
                    Ok(out) => Outcome::Ok(out),
                    Err(r) => Outcome::Refused(r),
                }
            };
            receipts.push(Receipt {
                tx: tx.id(),
                context: *ctx,
                index: index as u32,
                outcome,
            });
        }
        Ok(Execution {
            receipts,
            writes: overlay.writes,
        })
    }
}
