//! The OpenAPI 3.1 document served at `/v1/openapi.json`.

use serde_json::{json, Value};

const TX_DOC: &str = "A signed transaction. Either `application/octet-stream`: the canonical \
postcard encoding of `SignedTransaction { body: TxBody { signer: [u8; 32], nonce: varint u64, \
call: Call }, signature: bytes }`; or `application/json`: the same structure with ids and byte \
fields as lowercase hex strings. The signature is ed25519 (strict) by `signer` over \
`b\"resilient-records/tx/v1\\0\" || postcard(body)`; postcard is specified at \
https://postcard.jamesmunns.com/wire-format. `Call` is an enum: 0 RegisterRecord, 1 Grant, \
2 Retrieve, 3 Revoke.";

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
        "413": error_response("Body too large"),
        "503": error_response("Node stopping or overloaded")
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
            "/v1/info": {"get": {"summary": "Replica set, scheme, n, f and ledger status", "operationId": "info",
                "responses": {"200": json_response("Node info", "NodeInfo")}}},
            "/v1/openapi.json": {"get": {"summary": "This document", "operationId": "openapi",
                "responses": {"200": {"description": "OpenAPI 3.1"}}}},
            "/v1/tx": {"post": {"summary": "Submit a signed call; answers with its receipt once committed (a refused call is a receipt too)", "operationId": "submit",
                "requestBody": tx_body(),
                "responses": with(json!({"200": json_response("Receipt", "Receipt")}))}},
            "/v1/tx/{id}": {"get": {"summary": "Receipt of a committed transaction", "operationId": "receipt",
                "parameters": [id_param("id", "Transaction id (BLAKE3 of the signed encoding)")],
                "responses": with(json!({"200": json_response("Receipt", "Receipt")}))}},
            "/v1/retrieve": {"post": {"summary": "Submit a signed Retrieve call; answers with this replica's capsule fragment if the contracts allow it", "operationId": "retrieve",
                "requestBody": tx_body(),
                "responses": with(json!({"200": json_response("Retrieval", "Retrieval")}))}},
            "/v1/grants/{id}/fragment": {"put": {"summary": "Deliver this replica's key fragment of a committed grant (checked against the grant's commitment and verified)", "operationId": "deliverFragment",
                "parameters": [id_param("id", "Grant id")],
                "requestBody": {"required": true, "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
                "responses": with(json!({"204": {"description": "Stored"}}))}},
            "/v1/records/{id}": {"get": {"summary": "A record's public metadata", "operationId": "record",
                "parameters": [id_param("id", "Record id")],
                "responses": with(json!({"200": json_response("Record", "Record")}))}},
            "/v1/records/{id}/grants": {"get": {"summary": "A record's grants (owner only; Authorization scope `grants <id>`)", "operationId": "grantsOfRecord",
                "parameters": [id_param("id", "Record id")],
                "responses": with(json!({"200": {"description": "Grants", "content": {"application/json": {"schema": {"type": "object", "properties": {"grants": {"type": "array", "items": {"$ref": "#/components/schemas/Grant"}}}}}}}}))}},
            "/v1/records/{id}/audit": {"get": {"summary": "A record's audit trail, oldest first (owner only; Authorization scope `audit <id>`)", "operationId": "audit",
                "parameters": [id_param("id", "Record id")],
                "responses": with(json!({"200": {"description": "Audit trail", "content": {"application/json": {"schema": {"type": "object", "properties": {"entries": {"type": "array", "items": {"$ref": "#/components/schemas/AuditEntry"}}}}}}}}))}},
            "/v1/grants/{id}": {"get": {"summary": "A grant", "operationId": "grant",
                "parameters": [id_param("id", "Grant id")],
                "responses": with(json!({"200": json_response("Grant", "Grant")}))}},
            "/v1/accounts/{id}/listing": {"get": {"summary": "Records the account owns and grants it holds (that account only; Authorization scope `list <id>`)", "operationId": "listing",
                "parameters": [id_param("id", "Account id (its ed25519 public key)")],
                "responses": with(json!({"200": {"description": "Listing", "content": {"application/json": {"schema": {"type": "object", "properties": {"records": {"type": "array", "items": {"$ref": "#/components/schemas/Record"}}, "grants": {"type": "array", "items": {"$ref": "#/components/schemas/Grant"}}}}}}}}))}},
            "/v1/blobs": {"post": {"summary": "Store a ciphertext blob, streamed; answers with its CIDv1 (raw, sha2-256)", "operationId": "putBlob",
                "requestBody": {"required": true, "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
                "responses": with(json!({"201": {"description": "Stored", "content": {"application/json": {"schema": {"type": "object", "properties": {"cid": {"type": "string"}}}}}}}))}},
            "/v1/blobs/{cid}": {"get": {"summary": "Stream a blob; the node checks it against its CID and aborts the stream if it does not match", "operationId": "getBlob",
                "description": "With offset=N the answer is the blob less its first N bytes (the node still checks its whole copy): a client resumes a broken download with it, from the same or another replica. Not an HTTP range: the answer is 200 with the rest of the blob, whose length the node learns only as it reads.",
                "parameters": [{"name": "cid", "in": "path", "required": true, "schema": {"type": "string"}, "description": "CIDv1 (base32, bafkrei...)"},
                    {"name": "offset", "in": "query", "required": false, "schema": {"type": "integer", "format": "int64", "minimum": 0, "default": 0}, "description": "Bytes to skip; the only query this route takes (anything else is malformed_request)"}],
                "responses": with(json!({"200": {"description": "The blob, from offset on", "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
                    "416": {"description": "offset is past the blob's end (code malformed_request)", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}}))}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "operationId": "metrics",
                "responses": {"200": {"description": "Prometheus text format", "content": {"text/plain": {}}}}}}
        },
        "components": {
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
                    "code": {"type": "string", "description": "Stable code: a refusal code (replayed_nonce, invalid_call, unknown_record, unknown_grant, record_exists, not_owner, not_grantee, grant_revoked, grant_expired, purpose_mismatch, scheme_mismatch) or malformed_request, malformed_transaction, bad_signature, unauthorized, forbidden, unknown_blob, unknown_transaction, too_large, integrity, fragment_mismatch, fragment_missing, invalid_crypto, unavailable, internal, not_found"},
                    "message": {"type": "string"}}}}},
                "SignedTransaction": {"type": "object", "required": ["body", "signature"], "properties": {
                    "body": {"type": "object", "required": ["signer", "nonce", "call"], "properties": {"signer": id, "nonce": {"type": "integer", "minimum": 0}, "call": {"type": "object", "description": "Externally tagged: {\"RegisterRecord\": {...}} | {\"Grant\": {...}} | {\"Retrieve\": {\"grant\", \"purpose\"}} | {\"Revoke\": {\"grant\"}}"}}},
                    "signature": hex}},
                "Receipt": {"type": "object", "properties": {
                    "tx": id, "index": {"type": "integer"},
                    "context": {"$ref": "#/components/schemas/BlockContext"},
                    "outcome": {"type": "object", "description": "{\"Ok\": {\"Registered\": {\"record\"}} | {\"Granted\": {\"grant\"}} | {\"Retrieved\": {\"record\", \"grant\"}} | {\"Revoked\": {\"grant\"}}} or {\"Refused\": {\"code\", \"message\"}}"}}},
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
                    "status": {"description": "\"Active\" or {\"Revoked\": {\"at\": BlockContext}}"}}},
                "AuditEntry": {"type": "object", "properties": {
                    "record": id, "seq": {"type": "integer"}, "at": {"$ref": "#/components/schemas/BlockContext"},
                    "tx": id, "actor": id, "action": {"type": "string", "enum": ["Register", "Grant", "Retrieve", "Revoke"]},
                    "grant": {"oneOf": [id, {"type": "null"}]}, "purpose": {"oneOf": [{"type": "string"}, {"type": "null"}]},
                    "refused": {"oneOf": [{"type": "string"}, {"type": "null"}], "description": "null if it took effect, else the refusal code"}}},
                "Retrieval": {"type": "object", "properties": {
                    "receipt": {"$ref": "#/components/schemas/Receipt"},
                    "record": {"$ref": "#/components/schemas/Record"},
                    "grant": {"$ref": "#/components/schemas/Grant"},
                    "capsule_fragments": {"type": "array", "items": {"type": "object", "properties": {"replica": {"type": "integer"}, "fragment": hex}}}}},
                "NodeInfo": {"type": "object", "properties": {
                    "replica": {"type": "integer"}, "replicas": {"type": "integer", "description": "n"},
                    "faults_tolerated": {"type": "integer", "description": "f"}, "scheme": {"type": "integer"},
                    "status": {"type": "object"}}}
            }
        }
    })
}
