//! The OpenAPI 3.1 document served at `/v1/openapi.json`.

use serde_json::{json, Value};

const TX_DOC: &str = "A signed transaction. Either `application/octet-stream`: the canonical \
postcard encoding of `SignedTransaction { body: TxBody { signer: [u8; 32], nonce: varint u64, \
call: Call }, signature: bytes }`; or `application/json`: the same structure with ids and byte \
fields as lowercase hex strings (except `salt`, an array of 16 integers). The signature is \
ed25519, verified under ZIP-215 rules, by `signer` over `b\"resilient-records/tx/v1\\0\" || \
postcard(body)`; postcard is specified at https://postcard.jamesmunns.com/wire-format. `Call` \
is an enum: 0 RegisterRecord, 1 Grant, 2 Retrieve, 3 Revoke, 4 ConfirmErasure (replicas only). \
Every byte format, id derivation and proof is specified in docs/protocol.md of the repository, \
with known-answer vectors in docs/vectors/.";

const AUTH_DOC: &str = "Queries about an account's records carry `Authorization: RR-Ed25519 \
account=<hex>, at=<unix ms>, signature=<hex>`, an ed25519 signature by the account over \
`b\"resilient-records/query/v1\\0\" || varint(len(scope)) || scope || varint(at)`. The scope \
is `audit <record id>`, `grants <record id>` or `list <account id>`; `at` must be within 5 \
minutes of the node's clock.";

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    })
}

fn json_response(description: &str, schema: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}
    })
}

fn id_param(name: &str, description: &str) -> Value {
    json!({
        "name": name, "in": "path", "required": true, "description": description,
        "schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"}
    })
}

fn tx_body() -> Value {
    json!({
        "required": true,
        "description": TX_DOC,
        "content": {
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            "application/json": {"schema": {"$ref": "#/components/schemas/SignedTransaction"}}
        }
    })
}

/// The document.
pub fn openapi_document() -> Value {
    let errors = json!({
        "400": error_response("Malformed request or transaction"),
        "401": error_response("Bad signature or missing authorization"),
        "403": error_response("Refused by the contracts or not allowed"),
        "404": error_response("Unknown id"),
        "409": error_response("Replayed nonce, record exists, or fragment not delivered"),
        "405": error_response("Method not allowed on this route (method_not_allowed)"),
        "413": error_response("Body too large"),
        "415": error_response("Content-Type not accepted (unsupported_media_type)"),
        "503": error_response("Node stopping or overloaded (unavailable), or no quorum's certificate of its state in time (uncertified)")
    });
    let with = |mut ok: Value| {
        if let (Some(o), Some(e)) = (ok.as_object_mut(), errors.as_object()) {
            for (k, v) in e {
                o.insert(k.clone(), v.clone());
            }
        }
        ok
    };
    let hex = json!({"type": "string", "pattern": "^[0-9a-f]*$"});
    let id = json!({"type": "string", "pattern": "^[0-9a-f]{64}$"});
    let status = json!({"type": "object", "description": "Where this replica's ledger stands (not proven: for display and operations)", "properties": {
        "engine": {"type": "string", "description": "solo or pbft"},
        "height": {"type": "integer"}, "block_hash": id, "time": {"type": "integer", "description": "unix ms"},
        "state_digest": id, "replicas": {"type": "integer"}, "faults_tolerated": {"type": "integer"},
        "view": {"type": "integer", "description": "PBFT: the view this replica is in"},
        "primary": {"type": "integer", "description": "PBFT: the primary of that view"},
        "changing_to": {"type": "integer", "description": "PBFT: the view asked for, while a view change is under way"},
        "view_changes": {"type": "integer", "description": "View changes since this replica started"}}});
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Resilient Records node API",
            "version": "1",
            "description": format!("Patient-controlled sharing of encrypted records. Every call is a signed transaction; refusals come back as receipts with a stable code. {AUTH_DOC}"),
            "license": {"name": "AGPL-3.0-only", "identifier": "AGPL-3.0-only"}
        },
        "paths": {
            "/v1/health": {"get": {"summary": "Liveness and ledger height", "operationId": "health",
                "responses": {"200": {"description": "Serving", "content": {"application/json": {"schema": {"type": "object", "properties": {"status": {"type": "string"}, "height": {"type": "integer"}}}}}}}}},
            "/v1/info": {"get": {"summary": "Replica set, scheme, n, f and ledger status (not proven: a client takes the replica set from its own configuration)", "operationId": "info",
                "responses": {"200": json_response("Node info", "NodeInfo")}}},
            "/v1/head": {"get": {"summary": "The certificate of this replica's head: its latest header, signed by a quorum of the replica set", "operationId": "head",
                "responses": with(json!({"200": json_response("Certificate", "Certificate")}))}},
            "/v1/openapi.json": {"get": {"summary": "This document", "operationId": "openapi",
                "responses": {"200": {"description": "OpenAPI 3.1"}}}},
            "/v1/tx": {"post": {"summary": "Submit a signed call; answers with its certified receipt once committed (a refused call is a receipt too). Submitting the same transaction again answers its original receipt and orders nothing.", "operationId": "submit",
                "requestBody": tx_body(),
                "responses": with(json!({"200": json_response("Certified receipt", "CertifiedReceipt")}))}},
            "/v1/tx/{id}": {"get": {"summary": "Certified receipt of a committed transaction", "operationId": "receipt",
                "parameters": [id_param("id", "Transaction id (BLAKE3 of the signed encoding)")],
                "responses": with(json!({"200": json_response("Certified receipt", "CertifiedReceipt")}))}},
            "/v1/retrieve": {"post": {"summary": "Submit a signed Retrieve call; answers with its certified receipt (allowed or refused), the record and grant proven at this replica's head, and, if the grant is usable there, this replica's capsule fragment signed with its replica key", "operationId": "retrieve",
                "requestBody": tx_body(),
                "responses": with(json!({"200": json_response("Retrieval", "Retrieval")}))}},
            "/v1/grants/{id}/fragment": {"put": {"summary": "Deliver this replica's key fragment of a committed grant (checked against the grant's commitment and verified)", "operationId": "deliverFragment",
                "parameters": [id_param("id", "Grant id")],
                "requestBody": {"required": true, "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
                "responses": with(json!({"204": {"description": "Stored"}}))}},
            "/v1/records/{id}": {"get": {"summary": "A record's public metadata, proven (table records, key = the id; value = the record's postcard encoding, or absent)", "operationId": "record",
                "parameters": [id_param("id", "Record id")],
                "responses": with(json!({"200": json_response("Proven state", "StateAnswer")}))}},
            "/v1/records/{id}/grants": {"get": {"summary": "A record and its complete list of grants, proven: the record, the count (table counts), each index entry (record_grants) and each grant (owner only; Authorization scope `grants <id>`)", "operationId": "grantsOfRecord",
                "parameters": [id_param("id", "Record id")],
                "responses": with(json!({"200": json_response("Proven state", "StateAnswer")}))}},
            "/v1/records/{id}/audit": {"get": {"summary": "A record and its whole audit trail, proven: every entry below the record's audit_len (owner only; Authorization scope `audit <id>`)", "operationId": "audit",
                "parameters": [id_param("id", "Record id")],
                "responses": with(json!({"200": json_response("Proven state", "StateAnswer")}))}},
            "/v1/grants/{id}": {"get": {"summary": "A grant, proven (or its absence)", "operationId": "grant",
                "parameters": [id_param("id", "Grant id")],
                "responses": with(json!({"200": json_response("Proven state", "StateAnswer")}))}},
            "/v1/accounts/{id}/listing": {"get": {"summary": "Records the account owns and grants it holds, complete and proven: counts, index entries, records and grants (that account only; Authorization scope `list <id>`)", "operationId": "listing",
                "parameters": [id_param("id", "Account id (its ed25519 public key)")],
                "responses": with(json!({"200": json_response("Proven state", "StateAnswer")}))}},
            "/v1/blobs": {"post": {"summary": "Store a ciphertext blob, streamed; answers with its CIDv1 (raw, sha2-256)", "operationId": "putBlob",
                "requestBody": {"required": false, "description": "The blob; no body stores the empty blob", "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
                "responses": with(json!({"201": {"description": "Stored", "content": {"application/json": {"schema": {"type": "object", "properties": {"cid": {"type": "string"}}}}}}}))}},
            "/v1/blobs/{cid}": {"get": {"summary": "Stream a blob; the node checks it against its CID and aborts the stream if it does not match", "operationId": "getBlob",
                "description": "With offset=N the answer is the blob less its first N bytes (the node still checks its whole copy): a client resumes a broken download with it, from the same or another replica. Not an HTTP range: the answer is 200 with the rest of the blob, whose length the node learns only as it reads.",
                "parameters": [{"name": "cid", "in": "path", "required": true, "schema": {"type": "string", "pattern": "^b[a-z2-7]{58}$"}, "description": "CIDv1 raw sha2-256 in base32 (bafkrei..., 59 characters)"},
                    {"name": "offset", "in": "query", "required": false, "schema": {"type": "integer", "format": "int64", "minimum": 0, "default": 0}, "description": "Bytes to skip; the only query this route takes (anything else is malformed_request)"}],
                "responses": with(json!({"200": {"description": "The blob, from offset on", "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
                    "416": {"description": "offset is past the blob's end (code malformed_request)", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}}))}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "operationId": "metrics",
                "responses": {"200": {"description": "Prometheus text format", "content": {"text/plain": {}}}}}}
        },
        "components": {
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
                    "code": {"type": "string", "description": "Stable code: a refusal code (replayed_nonce, invalid_call, unknown_record, unknown_grant, record_exists, not_owner, not_grantee, grant_revoked, grant_expired, purpose_mismatch, scheme_mismatch, not_replica, threshold_too_low, single_proxy_refused, or policy.<code> from an operator's contract policy) or malformed_request, malformed_transaction, bad_signature, unauthorized, forbidden, unknown_blob, unknown_transaction, too_large, integrity, fragment_mismatch, fragment_missing, invalid_crypto, unavailable, uncertified, internal, not_found, method_not_allowed, unsupported_media_type"},
                    "message": {"type": "string"}}}}},
                "SignedTransaction": {"type": "object", "required": ["body", "signature"], "properties": {
                    "body": {"type": "object", "required": ["signer", "nonce", "call"], "properties": {"signer": id, "nonce": {"type": "integer", "minimum": 0}, "call": {"type": "object", "description": "Externally tagged: {\"RegisterRecord\": {...}} | {\"Grant\": {...}} | {\"Retrieve\": {\"grant\", \"purpose\"}} | {\"Revoke\": {\"grant\"}} | {\"ConfirmErasure\": {\"grant\", \"replica\"}}"}}},
                    "signature": hex}},
                "Receipt": {"type": "object", "properties": {
                    "tx": id, "index": {"type": "integer"},
                    "context": {"$ref": "#/components/schemas/BlockContext"},
                    "outcome": {"type": "object", "description": "{\"Ok\": {\"Registered\": {\"record\"}} | {\"Granted\": {\"grant\"}} | {\"Retrieved\": {\"record\", \"grant\"}} | {\"Revoked\": {\"grant\"}} | {\"ErasureConfirmed\": {\"grant\", \"replica\"}}} or {\"Refused\": {\"code\", \"message\"}}"}}},
                "BlockContext": {"type": "object", "properties": {"height": {"type": "integer"}, "time": {"type": "integer", "description": "Block time, unix milliseconds"}}},
                "Record": {"type": "object", "properties": {
                    "id": id, "owner": id, "cid": {"type": "string"}, "size": {"type": "integer"},
                    "scheme": {"type": "integer", "description": "1 umbral, 2 recrypt"}, "record_key": hex, "capsule": hex,
                    "media_type": {"type": "string"}, "encrypted_metadata": {"oneOf": [hex, {"type": "null"}]},
                    "registered": {"$ref": "#/components/schemas/BlockContext"}, "audit_len": {"type": "integer"}}},
                "Grant": {"type": "object", "properties": {
                    "id": id, "record": id, "owner": id, "grantee": id, "grantee_key": hex,
                    "threshold": {"type": "object", "properties": {"m": {"type": "integer"}, "n": {"type": "integer"}}},
                    "fragment_commitments": {"type": "array", "items": id},
                    "purpose": {"type": "string"}, "expires_at": {"oneOf": [{"type": "integer"}, {"type": "null"}]},
                    "granted": {"$ref": "#/components/schemas/BlockContext"},
                    "status": {"description": "\"Active\" or {\"Revoked\": {\"at\": BlockContext}}"},
                    "erased_by": {"type": "array", "items": {"type": "integer"}, "description": "Replicas that confirmed erasing their key fragment (after a revocation or expiry)"},
                    "single_proxy": {"type": "boolean", "description": "The record's scheme is single-proxy (recrypt): any one replica can re-encrypt"}}},
                "AuditEntry": {"type": "object", "properties": {
                    "record": id, "seq": {"type": "integer"}, "at": {"$ref": "#/components/schemas/BlockContext"},
                    "tx": id, "actor": id, "action": {"type": "string", "enum": ["Register", "Grant", "Retrieve", "Revoke", "ConfirmErasure"]},
                    "grant": {"oneOf": [id, {"type": "null"}]}, "purpose": {"oneOf": [{"type": "string"}, {"type": "null"}]},
                    "refused": {"oneOf": [{"type": "string"}, {"type": "null"}], "description": "null if it took effect, else the refusal code"}}},
                "LedgerHeader": {"type": "object", "description": "What the replicas certify after the block at `height`. Its hash is BLAKE3 derive_key(\"resilient-records 2026 ledger header\", le64(len) || postcard(header)) (docs/protocol.md section 10).", "properties": {
                    "replica_set": id, "height": {"type": "integer"}, "time": {"type": "integer", "description": "Block time, unix ms"},
                    "block": id, "parent": {"description": "Hash of the previous header", "type": "string"},
                    "state_root": {"type": "string", "description": "Sparse Merkle tree root over the whole state (see rr_core::smt)"},
                    "receipts_root": {"type": "string", "description": "RFC 6962 Merkle root of the block's receipts (see rr_core::merkle)"},
                    "receipts": {"type": "integer"}}},
                "Certificate": {"type": "object", "description": "A header and the replicas' ed25519 signatures over b\"resilient-records/header/v1\\0\" || header hash; it certifies the header when a quorum (2f + 1 of n; 1 of 1 for a dev node) of the client's trusted replica set signed it.", "properties": {
                    "header": {"$ref": "#/components/schemas/LedgerHeader"},
                    "signatures": {"type": "array", "items": {"type": "object", "properties": {"replica": {"type": "integer"}, "signature": hex}}}}},
                "SmtProof": {"type": "object", "properties": {
                    "leaf": {"oneOf": [{"type": "null"}, {"type": "object", "properties": {"key": id, "value_hash": id}}]},
                    "siblings": {"type": "array", "items": id, "description": "Sibling hashes from the root down"}}},
                "StateAnswer": {"type": "object", "description": "State entries proven against a certified header's state root. The client checks the certificate against the replica set it trusts (never the node's word), then each proof.", "properties": {
                    "certificate": {"$ref": "#/components/schemas/Certificate"},
                    "entries": {"type": "array", "items": {"type": "object", "properties": {
                        "table": {"type": "string", "enum": ["records", "grants", "record_grants", "grantee_grants", "owner_records", "nonces", "audit", "counts"]},
                        "key": hex, "value": {"oneOf": [hex, {"type": "null"}], "description": "The value's postcard encoding, or null: proven absent"},
                        "proof": {"$ref": "#/components/schemas/SmtProof"}}}}}},
                "CertifiedReceipt": {"type": "object", "properties": {
                    "receipt": {"$ref": "#/components/schemas/Receipt"},
                    "proof": {"type": "object", "description": "RFC 6962 audit path of the receipt (leaf: postcard(receipt)) in its block", "properties": {"index": {"type": "integer"}, "size": {"type": "integer"}, "path": {"type": "array", "items": id}}},
                    "certificate": {"$ref": "#/components/schemas/Certificate"}}},
                "Retrieval": {"type": "object", "properties": {
                    "receipt": {"$ref": "#/components/schemas/CertifiedReceipt"},
                    "state": {"$ref": "#/components/schemas/StateAnswer"},
                    "fragment": {"oneOf": [{"type": "null"}, {"type": "object", "description": "This replica's capsule fragment, ed25519-signed by its replica key over b\"resilient-records/capsule-fragment/v1\\0\" || postcard((retrieve tx id, grant id, replica, fragment))", "properties": {"replica": {"type": "integer"}, "fragment": hex, "signature": hex}}]},
                    "note": {"oneOf": [{"type": "string"}, {"type": "null"}], "description": "Why there is no fragment (not proven)"},
                    "withheld": {"oneOf": [{"type": "null"}, {"type": "object", "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}], "description": "Set when this replica withholds its fragment because the grant is not usable at its head (a client believes it once f + 1 replicas say so)"}}},
                "NodeInfo": {"type": "object", "properties": {
                    "replica": {"type": "integer"}, "replicas": {"type": "integer", "description": "n"},
                    "faults_tolerated": {"type": "integer", "description": "f"}, "scheme": {"type": "integer"},
                    "schemes": {"type": "array", "items": {"type": "object"}},
                    "replica_set": {"type": "object", "properties": {"keys": {"type": "array", "items": id}}},
                    "single_proxy_allowed": {"type": "boolean"},
                    "peers": {"type": "array", "items": {"type": "object"}},
                    "status": status}}
            }
        }
    })
}
