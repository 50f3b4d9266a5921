//! The OpenAPI 3.1 document served at `/v1/openapi.json`, derived from the
//! Rust types with `utoipa`.
//!
//! - Every schema comes from the type that is serialized: `rr_core`'s ids,
//!   calls, receipts, certificates and proofs (its `openapi` feature), this
//!   crate's [`crate::api::NodeInfo`], [`crate::api::Retrieval`] and
//!   [`super::ErrorBody`]. Their doc comments are the descriptions; their
//!   `#[schema(...)]` attributes give the JSON forms serde's hand-written
//!   impls make (hex ids, CIDs, purposes) with their patterns.
//! - Every route comes from its handler's `#[utoipa::path]` in `server.rs`.
//! - Written here, because no type says them: the error statuses and codes
//!   each route answers ([`ROUTE_ERRORS`], read from the handlers and
//!   `error.rs`), the node's own error codes ([`NODE_CODES`]; the refusal
//!   codes come from [`rr_core::ErrorCode`]), and protocol prose (signing
//!   bytes, hash formulas) no field carries.

use std::sync::OnceLock;

use serde_json::{json, Map, Value};
use utoipa::{OpenApi, ToSchema};

use rr_core::{ErrorCode, PolicyCode, MAX_TX_BYTES};

/// The answer of `GET /v1/health`.
#[derive(serde::Serialize, ToSchema)]
pub(super) struct Health {
    /// Always `ok` when the node answers.
    pub(super) status: HealthStatus,
    /// Height of the last executed block (0 before the first).
    pub(super) height: u64,
}

/// The node answers.
#[derive(serde::Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(super) enum HealthStatus {
    /// Serving.
    Ok,
}

/// The answer of `POST /v1/blobs`.
#[derive(serde::Serialize, ToSchema)]
pub(super) struct BlobCreated {
    /// The blob's content id.
    pub(super) cid: rr_core::ContentId,
}

/// Raw bytes (`application/octet-stream`).
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)] // A schema only.
pub(super) struct Binary(Vec<u8>);

/// The request body of the two routes that take a signed call.
pub(super) const TX_BODY: &str = "A signed transaction, as `application/json` (the \
`SignedTransaction` schema: ids and byte fields are lowercase hex strings, except `salt`, an \
array of 16 integers) or as `application/octet-stream` (also when there is no Content-Type): \
its canonical postcard encoding, `SignedTransaction { body: TxBody { signer: [u8; 32], nonce: \
varint u64, call: Call }, signature: bytes }` (https://postcard.jamesmunns.com/wire-format). \
Any other Content-Type is refused (415 `unsupported_media_type`). The signature is ed25519 by \
`signer` over `\"resilient-records/tx/v1\\0\" || postcard(body)`, verified under ZIP-215 \
rules with non-canonical encodings and small-order keys refused (docs/protocol.md section \
4.1); the transaction id is BLAKE3 of the postcard encoding. Every byte format, id \
derivation and proof is specified in docs/protocol.md, with known-answer vectors in \
docs/vectors/.";

/// The `Authorization` scheme of every read of ledger state.
const AUTH_DOC: &str = "`Authorization: RR-Ed25519 account=<64 hex>, at=<unix ms, \
decimal>, signature=<128 hex>`: an ed25519 signature by the account, under the rules of \
docs/protocol.md section 4.1 rule 1, over `\"resilient-records/query/v2\\0\" || D || \
varint(len(scope)) || scope || varint(at)`, where D is the 32-byte digest of the replica set \
(section 10.1): an authorization for another cluster is refused. The scope is the request: \
`record <record id>`, `grant <grant id>`, `tx <tx id>`, `audit <record id>`, `grants <record \
id>`, `list <account id>` or `upload` (a blob upload, by the uploading account), the id as 64 lowercase hex digits whatever case the URL uses; \
`at` must be within 300000 ms of the node's clock. A missing, malformed, expired, foreign or \
forged authorization is 401 `unauthorized`. Records are visible to their owner, grantees and \
the replicas, grants to the record's owner and the grantee, receipts to the transaction's \
signer: anyone else gets the 404 of an unknown id; grant lists and audit trails to the \
record's owner (403 `forbidden`), listings to their account (403).";

const INFO_DOC: &str = "Patient-controlled sharing of encrypted medical records: owners \
register records and grant, revoke and audit access; a replica set orders every call as a \
signed transaction, keeps the audit trail and re-encrypts for grantees (proxy \
re-encryption). A call the contracts refuse is still a certified receipt (200) with a stable \
code; HTTP errors are `{\"error\": {\"code\", \"message\"}}` with the codes each route lists. \
Every route also answers 405 `method_not_allowed` to another method, and any other path is \
404 `not_found`. Answers are certified by the replica set (`Certificate`) and proven \
(`StateAnswer`, `CertifiedReceipt`): a client checks them against the replica set it \
trusts, never the node's word. Times are unix milliseconds; ids are 64 lowercase hex \
digits.";

/// The node's own error codes (HTTP error bodies only), and what each
/// means; refusal codes are [`ErrorCode`]'s. Read from `error.rs`
/// (`classify`, `json_errors`) and the handlers in `server.rs`.
pub(super) const NODE_CODES: &[(&str, &str)] = &[
    ("malformed_request", "bad id in the path, bad query, a non-Retrieve call sent to /v1/retrieve, a body that could not be read or an upload that broke off"),
    ("malformed_transaction", "the transaction's bytes or JSON do not decode, exceed the transaction size limit or carry a bad purpose"),
    ("bad_signature", "the transaction's signature does not verify"),
    ("unauthorized", "missing, malformed, expired or forged query authorization"),
    ("forbidden", "authenticated, but not the record's owner or not the listed account"),
    ("unknown_record", "(reads) no such record on this replica, or one the account may not read; not proven"),
    ("unknown_grant", "no such grant on this replica (reads: or one the account may not read)"),
    ("unknown_blob", "no blob with this content id on this replica"),
    ("blob_not_held", "a RegisterRecord names a blob this replica does not hold: upload it, then send the same transaction again; not ordered here"),
    ("blob_size_mismatch", "a RegisterRecord declares a size other than its blob's; not ordered here"),
    ("outcome_unknown", "the replica stopped after the call left it and before it was decided: it may still commit; send the same signed transaction again to learn its outcome"),
    ("unknown_transaction", "no committed transaction with this id on this replica, or one the account did not sign"),
    ("too_large", "the body is over the route's limit"),
    ("quota_exceeded", "a blob upload would pass the account's quota of uploads no committed record names yet (413) or the node's cap on all of them (507): register the records of earlier uploads, or wait until unregistered ones are deleted after the grace period; nothing was stored"),
    ("integrity", "this replica's copy of the blob does not match its content id"),
    ("fragment_mismatch", "the delivered key fragment does not match the grant's commitment, or the sealed fragment does not open for this replica"),
    ("fragment_missing", "this replica holds no key fragment for the grant"),
    ("invalid_crypto", "a proxy re-encryption value (key fragment, capsule) does not decode or verify"),
    ("scheme_mismatch", "the record uses a scheme this node cannot serve"),
    ("unavailable", "the node is stopping or overloaded: retry, or ask another replica"),
    ("uncertified", "no certificate of this replica's state from a quorum in time: ask another replica"),
    ("not_found", "no such route, or metrics disabled"),
    ("method_not_allowed", "the route does not take this method"),
    ("unsupported_media_type", "the Content-Type is not one the route takes"),
    ("internal", "a failure of the node itself (storage, a task), logged on the node"),
];

/// One error a route answers: status, code, when.
type RouteError = (u16, &'static str, &'static str);

const BAD_ID: RouteError = (
    400,
    "malformed_request",
    "the id in the path is not 64 hex digits",
);
const INTERNAL: RouteError = (
    500,
    "internal",
    "storage or another failure of the node (logged)",
);
const UNCERTIFIED: RouteError = (
    503,
    "uncertified",
    "no quorum's certificate of this replica's state in time: ask another replica",
);
const UNAVAILABLE: RouteError = (503, "unavailable", "the node is stopping or overloaded");
const TX_ERRORS: [RouteError; 7] = [
    (
        400,
        "malformed_transaction",
        "the body does not decode as a transaction, or breaks its size limit or the purpose rules",
    ),
    (400, "malformed_request", "the body could not be read"),
    (
        401,
        "bad_signature",
        "the transaction's signature does not verify",
    ),
    (
        413,
        "too_large",
        "the body is over the limit (262144 bytes by default)",
    ),
    (
        415,
        "unsupported_media_type",
        "a Content-Type other than application/json or application/octet-stream",
    ),
    UNAVAILABLE,
    UNCERTIFIED,
];
const OUTCOME_UNKNOWN: RouteError = (
    503,
    "outcome_unknown",
    "the replica stopped before the call was decided: it may still commit; send the same signed transaction again",
);
const AUTH_ERRORS: [RouteError; 2] = [
    (401, "unauthorized", "the Authorization header is missing, malformed, expired, signed for another request or cluster, or forged"),
    (403, "forbidden", "the authenticated account may not see this"),
];

/// The errors of the owner-only reads of a record (its grants, its trail).
const OWNER_READ_ERRORS: &[RouteError] = &[
    BAD_ID,
    AUTH_ERRORS[0],
    (
        403,
        "forbidden",
        "the authenticated account does not own the record",
    ),
    (
        404,
        "unknown_record",
        "no such record on this replica (not proven; checked after the authorization)",
    ),
    INTERNAL,
    UNCERTIFIED,
    UNAVAILABLE,
];

/// The errors each route answers, by path (each path has one method):
/// every status and code its handler, the extractors and the error
/// mapping can produce, and no other.
pub(super) const ROUTE_ERRORS: &[(&str, &[RouteError])] = &[
    ("/v1/health", &[]),
    ("/v1/info", &[]),
    ("/v1/head", &[INTERNAL, UNCERTIFIED, UNAVAILABLE]),
    ("/v1/openapi.json", &[]),
    (
        "/v1/tx",
        &[
            TX_ERRORS[0],
            TX_ERRORS[1],
            (400, "blob_size_mismatch", "a RegisterRecord declares a size other than the stored blob's (admission: not ordered here)"),
            TX_ERRORS[2],
            (409, "blob_not_held", "a RegisterRecord names a blob this replica does not hold (admission: not ordered here); upload it and send the same transaction again"),
            TX_ERRORS[3],
            TX_ERRORS[4],
            INTERNAL,
            TX_ERRORS[5],
            TX_ERRORS[6],
            OUTCOME_UNKNOWN,
        ],
    ),
    (
        "/v1/tx/{id}",
        &[
            BAD_ID,
            AUTH_ERRORS[0],
            (404, "unknown_transaction", "no committed transaction with this id on this replica, or the account did not sign it"),
            INTERNAL,
            UNCERTIFIED,
            UNAVAILABLE,
        ],
    ),
    (
        "/v1/retrieve",
        &[
            TX_ERRORS[0],
            (400, "malformed_request", "the body could not be read, or the call is not a Retrieve"),
            (400, "invalid_crypto", "the record's capsule or the stored key fragment does not decode"),
            (400, "scheme_mismatch", "the record is of a scheme this node cannot serve"),
            (400, "fragment_mismatch", "the stored key fragment does not open for this replica"),
            TX_ERRORS[2],
            TX_ERRORS[3],
            TX_ERRORS[4],
            INTERNAL,
            TX_ERRORS[5],
            TX_ERRORS[6],
            OUTCOME_UNKNOWN,
        ],
    ),
    (
        "/v1/grants/{id}/fragment",
        &[
            (400, "malformed_request", "the id in the path is not 64 hex digits, or the body could not be read"),
            (400, "fragment_mismatch", "the fragment does not match the grant's commitment for this replica, or the sealed fragment does not open for it"),
            (400, "invalid_crypto", "the fragment does not decode or verify against the record's and grantee's keys"),
            (400, "scheme_mismatch", "the record is of a scheme this node cannot serve"),
            (403, "grant_revoked", "the grant was revoked (an error, not a receipt: delivery is not a ledger call)"),
            (403, "grant_expired", "the grant expired at this replica's head"),
            (404, "unknown_grant", "no such grant on this replica (a cluster replica first waits up to 5 s for it to commit)"),
            (413, "too_large", "the body is over the limit (262144 bytes by default)"),
            INTERNAL,
        ],
    ),
    (
        "/v1/records/{id}",
        &[
            BAD_ID,
            AUTH_ERRORS[0],
            (404, "unknown_record", "no such record, or one the account may not read (the same answer: it learns nothing)"),
            INTERNAL,
            UNCERTIFIED,
            UNAVAILABLE,
        ],
    ),
    (
        "/v1/grants/{id}",
        &[
            BAD_ID,
            AUTH_ERRORS[0],
            (404, "unknown_grant", "no such grant, or one the account may not read (the same answer: it learns nothing)"),
            INTERNAL,
            UNCERTIFIED,
            UNAVAILABLE,
        ],
    ),
    (
        "/v1/records/{id}/grants",
        OWNER_READ_ERRORS,
    ),
    (
        "/v1/records/{id}/audit",
        OWNER_READ_ERRORS,
    ),
    (
        "/v1/accounts/{id}/listing",
        &[
            BAD_ID,
            AUTH_ERRORS[0],
            (403, "forbidden", "the authenticated account is not the listed one"),
            INTERNAL,
            UNCERTIFIED,
            UNAVAILABLE,
        ],
    ),
    (
        "/v1/blobs",
        &[
            (400, "malformed_request", "the upload broke off"),
            (401, "unauthorized", "the Authorization header (scope `upload`) is missing, malformed, expired, signed for another cluster, or forged"),
            (413, "too_large", "the blob is over the node's max_blob_size"),
            (413, "quota_exceeded", "the account's blobs that no committed record names yet, with this one, would pass its quota (upload_quota_bytes): register their records, or wait until unregistered ones are deleted after the grace period; nothing was stored"),
            INTERNAL,
            (507, "quota_exceeded", "all accounts' blobs that no committed record names yet would pass the node's cap (max_unreferenced_bytes): retry later or at another replica; nothing was stored"),
        ],
    ),
    (
        "/v1/blobs/{cid}",
        &[
            (400, "malformed_request", "the path is not a CIDv1 raw sha2-256, or the query is not offset=<decimal up to 2^63 - 1>"),
            (404, "unknown_blob", "no blob with this content id on this replica"),
            (416, "malformed_request", "offset is past the blob's end"),
            (500, "integrity", "this replica's copy (of at most 4 MiB) does not match the content id; a larger damaged copy aborts the stream instead"),
            INTERNAL,
        ],
    ),
    ("/metrics", &[(404, "not_found", "the node serves no metrics")]),
];

/// Protocol facts no field carries, added to the derived descriptions.
const SCHEMA_NOTES: &[(&str, &str)] = &[
    ("SignedTransaction", "Signed by `body.signer` over `\"resilient-records/tx/v1\\0\" || postcard(body)`, verified under ZIP-215 with non-canonical encodings and small-order keys refused (docs/protocol.md section 4.1). Its id is BLAKE3(postcard(transaction))."),
    ("LedgerHeader", "Its hash is BLAKE3 derive_key(\"resilient-records 2026 ledger header\", le64(len(p)) || p) with p = postcard(header): the input carries its length as le64, like every length-prefixed derivation of docs/protocol.md section 2.5 (section 10.2)."),
    ("Certificate", "Each signature is ed25519 by the replica's key over `\"resilient-records/header/v1\\0\" || header hash`. It certifies the header when a quorum (2f + 1 of n; 1 of 1 for a dev node) of the replica set the client trusts signed it."),
    ("MerkleProof", "RFC 6962 audit path of the receipt, leaf = postcard(receipt), hashed with the domains of docs/protocol.md section 10.5."),
    ("SmtProof", "Sparse Merkle tree proof, docs/protocol.md section 10.4."),
    ("ProvenEntry", "`value` is the postcard encoding of what the table holds (RecordInfo, GrantInfo, AuditEntry, an id, a be64 count), or null: proven absent."),
    ("SignedFragment", "The signature is ed25519 by the replica's key over `\"resilient-records/capsule-fragment/v1\\0\" || postcard((retrieve tx id, grant id, replica, fragment))`."),
    ("Retrieval", "A refused retrieval is a 200 too: its receipt's outcome is Refused, with a `note` and no fragment."),
];

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Resilient Records node API",
        version = "1",
        description = INFO_DOC,
        license(name = "AGPL-3.0-only", identifier = "AGPL-3.0-only")
    ),
    components(schemas(
        super::ErrorBody,
        rr_core::RecordInfo,
        rr_core::GrantInfo,
        rr_core::AuditEntry,
        rr_core::Table
    ))
)]
struct ApiDoc;

/// The document: derived once, then served as it is.
pub fn openapi_document() -> Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(build).clone()
}

fn build() -> Value {
    let mut doc = ApiDoc::openapi();
    doc.merge(super::server::Routes::openapi());
    let mut v = serde_json::to_value(&doc).expect("an OpenAPI document serializes");
    refine(&mut v);
    v
}

/// What the derive cannot say: error codes and responses, limits, the
/// security scheme, protocol notes.
fn refine(doc: &mut Value) {
    doc["openapi"] = json!("3.1.0");
    let schemas = &mut doc["components"]["schemas"];
    let native = native_codes(&schemas["ErrorCode"]);
    error_code_schemas(schemas, &native);
    limits(schemas);
    for (name, note) in SCHEMA_NOTES {
        let schema = find_schema(schemas, name);
        let text = match schema.get("description").and_then(Value::as_str) {
            Some(d) if !d.is_empty() => format!("{d}\n\n{note}"),
            _ => note.to_string(),
        };
        schema["description"] = json!(text);
    }
    let calls = call_variants(&schemas["Call"]);
    doc["components"]["securitySchemes"] = json!({"rr_ed25519": {
        "type": "apiKey", "in": "header", "name": "Authorization", "description": AUTH_DOC,
    }});
    let tx_body = format!(
        "{TX_BODY} `Call` is an enum; its postcard variant index comes first: {calls}. \
         Limits: the postcard encoding is at most {MAX_TX_BYTES} bytes (else \
         malformed_transaction); the request body at most {} bytes by default (else 413).",
        super::ServerConfig::default().max_body_bytes
    );
    let paths = doc["paths"].as_object_mut().expect("paths");
    for (path, item) in paths.iter_mut() {
        let errors = ROUTE_ERRORS
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, e)| *e)
            .unwrap_or_else(|| panic!("no error list for {path} in ROUTE_ERRORS"));
        for op in item.as_object_mut().expect("path item").values_mut() {
            if let Some(body) = op.get_mut("requestBody") {
                if body["content"].get("application/json").is_some() {
                    body["description"] = json!(tx_body);
                }
            }
            let responses = op["responses"].as_object_mut().expect("responses");
            for (status, response) in error_responses(errors) {
                responses.insert(status, response);
            }
        }
    }
    // No body stores the empty blob.
    doc["paths"]["/v1/blobs"]["post"]["requestBody"]["required"] = json!(false);
    // `?offset` may be left out, not sent empty.
    if let Some(params) = doc["paths"]["/v1/blobs/{cid}"]["get"]["parameters"].as_array_mut() {
        for p in params.iter_mut().filter(|p| p["name"] == "offset") {
            p["schema"]["type"] = json!("integer");
            p["schema"]["default"] = json!(0);
        }
    }
}

/// The schema named `name`, wherever the derive put it: a component, or a
/// variant of a component's `oneOf` (by its one property).
fn find_schema<'a>(schemas: &'a mut Value, name: &str) -> &'a mut Value {
    if schemas.get(name).is_some() {
        return &mut schemas[name];
    }
    for schema in schemas.as_object_mut().expect("schemas").values_mut() {
        if let Some(variants) = schema.get_mut("oneOf").and_then(Value::as_array_mut) {
            for v in variants.iter_mut() {
                if v["properties"].get(name).is_some() {
                    return &mut v["properties"][name];
                }
            }
        }
    }
    panic!("no schema {name} in the document")
}

/// The native refusal codes, from the derived [`ErrorCode`] schema (its
/// unit variants, snake_case), each checked against [`ErrorCode::as_str`].
fn native_codes(derived: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut strings = |v: &Value| {
        for s in v["enum"].as_array().into_iter().flatten() {
            if let Some(code) = s.as_str().and_then(|s| s.parse::<ErrorCode>().ok()) {
                out.push(code.as_str().to_string());
            }
        }
    };
    strings(derived);
    for variant in derived["oneOf"].as_array().into_iter().flatten() {
        strings(variant);
    }
    out
}

/// The `ErrorCode` (refusals), `NodeErrorCode` and `ErrorDetail.code`
/// schemas.
fn error_code_schemas(schemas: &mut Value, native: &[String]) {
    let description = schemas["ErrorCode"]["description"].clone();
    let policy = format!(
        "^{}[a-z][a-z0-9_]{{0,{}}}$",
        PolicyCode::PREFIX.replace('.', "\\."),
        PolicyCode::MAX_LEN - 1
    );
    schemas["ErrorCode"] = json!({
        "description": description,
        "oneOf": [
            {"type": "string", "enum": native, "description": "A native refusal code (docs/protocol.md section 16.1)"},
            {"type": "string", "pattern": policy, "description": "A contract policy's code, `policy.` and 1 to 32 characters of [a-z0-9_] starting with a letter (section 16.2)"},
        ],
    });
    let node: Vec<&str> = NODE_CODES
        .iter()
        .map(|(c, _)| *c)
        .filter(|c| !native.iter().any(|n| n == c))
        .collect();
    let meanings: Vec<String> = NODE_CODES
        .iter()
        .map(|(c, m)| format!("`{c}`: {m}"))
        .collect();
    schemas["NodeErrorCode"] = json!({
        "type": "string",
        "enum": node,
        "description": format!(
            "A node's own error code (HTTP error bodies only). {}.",
            meanings.join("; ")
        ),
    });
    let code = &mut schemas["ErrorDetail"]["properties"]["code"];
    let doc = code["description"].clone();
    *code = json!({
        "anyOf": [{"$ref": "#/components/schemas/ErrorCode"}, {"$ref": "#/components/schemas/NodeErrorCode"}],
        "description": doc,
    });
}

/// The contracts' default size limits, on the fields they bound (a call
/// over one is refused in its receipt with `invalid_call`).
fn limits(schemas: &mut Value) {
    let l = crate::contracts::ContractLimits::default();
    let note = "default limit of the contracts (operators may change it); a call over it is refused in its receipt with invalid_call";
    let hex = |bytes: usize| json!({"minLength": 2, "maxLength": 2 * bytes, "description": format!("At most {bytes} bytes: {note}.")});
    for (schema, field, bound) in [
        ("RegisterRecord", "record_key", hex(l.max_key_bytes)),
        ("RegisterRecord", "capsule", hex(l.max_capsule_bytes)),
        ("Grant", "grantee_key", hex(l.max_key_bytes)),
        (
            "RegisterRecord",
            "media_type",
            json!({"maxLength": l.max_media_type_bytes, "description": format!("At most {} bytes: {note}.", l.max_media_type_bytes)}),
        ),
        (
            "RegisterRecord",
            "encrypted_metadata",
            json!({"maxLength": 2 * l.max_metadata_bytes, "description": format!("At most {} bytes: {note}.", l.max_metadata_bytes)}),
        ),
    ] {
        let target = &mut schemas[schema]["properties"][field];
        let Some(obj) = target.as_object_mut() else {
            panic!("no field {schema}.{field}")
        };
        for (k, v) in bound.as_object().expect("object") {
            match (k.as_str(), obj.get(k).and_then(Value::as_str)) {
                ("description", Some(d)) => {
                    let joined = format!("{d} {}", v.as_str().unwrap_or_default());
                    obj.insert(k.clone(), json!(joined));
                }
                _ => {
                    obj.insert(k.clone(), v.clone());
                }
            }
        }
    }
}

/// The derived `Call` variants in order (= postcard variant index).
fn call_variants(call: &Value) -> String {
    call["oneOf"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["properties"].as_object()?.keys().next().cloned())
        .enumerate()
        .map(|(i, name)| format!("{i} {name}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The error responses of a route: one per status, its `code` limited to
/// the codes the route answers with it.
fn error_responses(errors: &[RouteError]) -> Vec<(String, Value)> {
    let mut by_status: Vec<(u16, Vec<&RouteError>)> = Vec::new();
    for e in errors {
        match by_status.iter_mut().find(|(s, _)| *s == e.0) {
            Some((_, list)) => list.push(e),
            None => by_status.push((e.0, vec![e])),
        }
    }
    by_status
        .into_iter()
        .map(|(status, list)| {
            let mut codes: Vec<&str> = list.iter().map(|e| e.1).collect();
            codes.dedup();
            let description = list
                .iter()
                .map(|e| format!("`{}`: {}", e.1, e.2))
                .collect::<Vec<_>>()
                .join("; ");
            let mut code = Map::new();
            code.insert("enum".into(), json!(codes));
            let schema = json!({"allOf": [
                {"$ref": "#/components/schemas/ErrorBody"},
                {"type": "object", "properties": {"error": {"type": "object", "properties": {"code": code}}}},
            ]});
            (
                status.to_string(),
                json!({"description": description, "content": {"application/json": {"schema": schema}}}),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes_in(doc: &Value) -> (Vec<String>, Vec<String>) {
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        };
        let schemas = &doc["components"]["schemas"];
        (
            strings(&schemas["ErrorCode"]["oneOf"][0]["enum"]),
            strings(&schemas["NodeErrorCode"]["enum"]),
        )
    }

    #[test]
    fn every_call_and_every_refusal_code_is_in_the_schema() {
        let doc = openapi_document();
        let schemas = &doc["components"]["schemas"];
        let calls = call_variants(&schemas["Call"]);
        assert_eq!(
            calls,
            "0 RegisterRecord, 1 Grant, 2 Retrieve, 3 Revoke, 4 ConfirmErasure"
        );
        for call in [
            "RegisterRecord",
            "Grant",
            "Retrieve",
            "Revoke",
            "ConfirmErasure",
        ] {
            assert!(schemas.get(call).is_some(), "{call}");
        }
        let outputs = serde_json::to_string(&schemas["CallOutput"]).unwrap();
        for out in [
            "Registered",
            "Granted",
            "Retrieved",
            "Revoked",
            "ErasureConfirmed",
        ] {
            assert!(outputs.contains(out), "{out}");
        }
        let (native, node) = codes_in(&doc);
        // Every native code (the derive lists the enum's unit variants,
        // each checked against its string).
        for code in ErrorCode::NATIVE {
            assert!(native.contains(&code.as_str().to_string()), "{code}");
        }
        let derived = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let derived = &derived["components"]["schemas"]["ErrorCode"];
        let unit_variants = serde_json::to_string(derived)
            .unwrap()
            .matches("\"enum\"")
            .count();
        assert_eq!(
            native.len(),
            unit_variants,
            "an ErrorCode variant's snake_case name is not its string: {derived}"
        );
        // Policy codes by pattern; node codes apart.
        let policy = schemas["ErrorCode"]["oneOf"][1]["pattern"]
            .as_str()
            .unwrap();
        assert_eq!(policy, "^policy\\.[a-z][a-z0-9_]{0,31}$");
        assert!(node.contains(&"malformed_request".to_string()));
        assert!(node.iter().all(|c| !native.contains(c)));
    }

    #[test]
    fn every_route_lists_only_codes_that_exist() {
        let doc = openapi_document();
        let (native, node) = codes_in(&doc);
        for (path, errors) in ROUTE_ERRORS {
            assert!(doc["paths"].get(*path).is_some(), "{path}");
            for (status, code, _) in *errors {
                assert!(
                    native.iter().chain(&node).any(|c| c == code),
                    "{path} {status} {code}"
                );
            }
        }
        assert_eq!(doc["paths"].as_object().unwrap().len(), ROUTE_ERRORS.len());
    }

    #[test]
    fn every_code_the_server_maps_to_is_documented() {
        use crate::api::NodeError;
        use axum::http::StatusCode;
        let doc = openapi_document();
        let (native, node) = codes_in(&doc);
        let g = rr_core::GrantId([1; 32]);
        let r = rr_core::RecordId([2; 32]);
        let replica = rr_core::ReplicaId(0);
        let errors = [
            NodeError::BadTransaction(rr_core::DecodeError::TrailingBytes {
                what: "x",
                extra: 1,
            }),
            NodeError::Unauthorized(String::new()),
            NodeError::Forbidden(String::new()),
            NodeError::UnknownRecord(r),
            NodeError::UnknownGrant(g),
            NodeError::Blob(rr_core::BlobError::TooLarge { limit: 1 }),
            NodeError::QuotaExceeded {
                global: false,
                message: String::new(),
            },
            NodeError::QuotaExceeded {
                global: true,
                message: String::new(),
            },
            NodeError::FragmentMismatch { grant: g, replica },
            NodeError::FragmentMissing { grant: g, replica },
            NodeError::Pre(rr_core::PreError::OpenFailed),
            NodeError::SchemeMismatch {
                record: r,
                found: rr_core::SchemeId(9),
                served: rr_core::SchemeId::UMBRAL,
            },
            NodeError::WrongCall {
                expected: "retrieve",
                found: "grant",
            },
            NodeError::NotFound(String::new()),
            NodeError::Consensus(rr_core::ConsensusError::Stopped),
            NodeError::Consensus(rr_core::ConsensusError::OutcomeUnknown(rr_core::TxId(
                [3; 32],
            ))),
            NodeError::BlobNotHeld {
                cid: rr_core::ContentId::from_sha256([4; 32]),
            },
            NodeError::BlobSizeMismatch {
                cid: rr_core::ContentId::from_sha256([4; 32]),
                declared: 1,
                stored: 2,
            },
            NodeError::Uncertified(String::new()),
            NodeError::Setup(String::new()),
            NodeError::Refused(rr_core::Refusal {
                code: ErrorCode::GrantRevoked,
                message: String::new(),
            }),
        ];
        for e in &errors {
            let (status, code) = super::super::error::classify(e);
            assert!(status != StatusCode::OK);
            assert!(
                native.iter().chain(&node).any(|c| *c == code),
                "{e:?}: {code}"
            );
        }
    }

    #[test]
    fn ids_limits_and_units_are_in_the_schemas() {
        let doc = openapi_document();
        let s = &doc["components"]["schemas"];
        for id in [
            "AccountId",
            "RecordId",
            "GrantId",
            "TxId",
            "Digest",
            "BlockHash",
        ] {
            assert_eq!(s[id]["pattern"], "^[0-9a-f]{64}$", "{id}");
        }
        assert_eq!(s["Purpose"]["pattern"], "^[a-z0-9._-]{1,64}$");
        assert_eq!(s["ContentId"]["pattern"], "^b[a-z2-7]{58}$");
        assert!(s["Timestamp"]["description"]
            .as_str()
            .unwrap()
            .contains("Milliseconds since the Unix epoch"));
        assert_eq!(
            s["RegisterRecord"]["properties"]["record_key"]["maxLength"],
            2048
        );
        assert_eq!(s["RegisterRecord"]["properties"]["salt"]["maxItems"], 16);
        let grant = serde_json::to_string(&s["GrantInfo"]).unwrap();
        for field in ["erased_by", "single_proxy", "expires_at"] {
            assert!(grant.contains(field), "{field}");
        }
        let audit = serde_json::to_string(&s["AuditAction"]).unwrap();
        assert!(audit.contains("ConfirmErasure"));
        let retrieval = &s["Retrieval"]["properties"];
        assert!(retrieval.get("withheld").is_some());
        assert!(doc["paths"]["/v1/tx"]["post"]["requestBody"]["description"]
            .as_str()
            .unwrap()
            .contains("4 ConfirmErasure"));
        // Refusals are 200 receipts: /v1/tx answers no 403, and its only
        // 409 is admission's blob_not_held (the call was not ordered).
        let tx = &doc["paths"]["/v1/tx"]["post"]["responses"];
        assert!(tx.get("403").is_none());
        assert!(tx.get("200").is_some());
        let conflict = serde_json::to_string(&tx["409"]).unwrap();
        assert!(conflict.contains("blob_not_held"), "{conflict}");
        assert!(!conflict.contains("replayed_nonce"), "{conflict}");
    }
}
