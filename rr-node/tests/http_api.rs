//! The HTTP API: the whole flow through `HttpClient`, and bad input through
//! raw HTTP. Each bad request gets a JSON error with a stable code, and
//! changes nothing.

use std::sync::Arc;

use rr_core::{byte_stream_of, ErrorCode, Purpose, RecordId};
use rr_node::http::{self, ErrorBody, HttpClient, ServerConfig};
use rr_node::{collect, Client, DevConfig, GrantOptions, Identity, Node, NodeApi, NodeError};
use rr_pre::Umbral;

struct Server {
    url: String,
    node: Arc<Node<rr_node::DevTypes>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start(max_blob_bytes: u64) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let node = Node::open_dev(DevConfig::new(dir.path())).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let router = http::router(
            node.clone(),
            ServerConfig::default().with_max_blob_bytes(max_blob_bytes),
        );
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(http::serve(listener, router, async {
            let _ = stopped.await;
        }));
        Self {
            url,
            node,
            stop: Some(stop),
            task,
            _dir: dir,
        }
    }

    fn client(&self, identity: Identity<Umbral>) -> Client<Umbral> {
        let replicas = rr_node::Replicas::single(
            Arc::new(HttpClient::new(&self.url).unwrap()),
            self.node.replica_set().keys()[0],
        )
        .unwrap();
        Client::new(replicas, Arc::new(Umbral), identity)
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap().unwrap();
        self.node.shutdown().await.unwrap();
    }
}

/// Sends a raw HTTP/1.1 request and reads the status and body.
async fn raw_http(addr: &str, head: &str, body: &[u8]) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    // The server may answer (and close) before it has read everything.
    let _ = stream.write_all(body).await;
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

fn walk_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk_files(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

async fn error_of(resp: reqwest::Response) -> (u16, ErrorBody) {
    let status = resp.status().as_u16();
    let body: ErrorBody = resp.json().await.expect("errors are JSON");
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_flow_over_http() {
    let server = Server::start(1 << 30).await;
    let alice = server.client(Identity::generate(&Umbral));
    let bob = server.client(Identity::generate(&Umbral));
    let record: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let put = alice
        .put(byte_stream_of(record.clone()), "application/octet-stream")
        .await
        .unwrap();
    let treatment = Purpose::new("treatment").unwrap();
    let grant = alice
        .grant(
            put.record_id,
            &bob.card(),
            GrantOptions {
                purpose: treatment.clone(),
                expires_at: None,
                threshold: None,
            },
        )
        .await
        .unwrap();
    let plain = collect(bob.retrieve(grant, treatment.clone()).await.unwrap())
        .await
        .unwrap();
    assert_eq!(plain, record);
    assert_eq!(
        collect(alice.read_own(put.record_id).await.unwrap())
            .await
            .unwrap(),
        record
    );

    alice.revoke(grant).await.unwrap();
    let err = bob.retrieve(grant, treatment).await.err().unwrap();
    match err {
        rr_node::ClientError::Node(NodeError::Refused(r)) => {
            assert_eq!(r.code, ErrorCode::GrantRevoked);
            assert!(r.message.contains("revoked at height"), "{}", r.message);
        }
        other => panic!("expected a revocation refusal, got {other}"),
    }

    let trail = alice.audit(put.record_id).await.unwrap();
    assert_eq!(trail.len(), 5);
    assert_eq!(trail[4].refused, Some(ErrorCode::GrantRevoked));
    let (records, grants) = alice.listing().await.unwrap();
    assert_eq!(records.len(), 1);
    assert!(grants.is_empty());
    let (_, bobs) = bob.listing().await.unwrap();
    assert_eq!(bobs.len(), 1);
    assert_eq!(alice.grants_of(put.record_id).await.unwrap().len(), 1);

    // Only the owner reads the audit trail; the node says so.
    let err = bob.audit(put.record_id).await.err().unwrap();
    assert!(err.to_string().contains("does not own"), "{err}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_json_errors_and_change_nothing() {
    let server = Server::start(1024 * 1024).await;
    let http = reqwest::Client::new();
    let u = |p: &str| format!("{}{p}", server.url);
    let before = server.node.status();

    // Malformed JSON transaction.
    let resp = http
        .post(u("/v1/tx"))
        .header("content-type", "application/json")
        .body("{\"body\": 12")
        .send()
        .await
        .unwrap();
    let (status, body) = error_of(resp).await;
    assert_eq!(
        (status, body.error.code.as_str()),
        (400, "malformed_transaction")
    );

    // Garbage postcard.
    let resp = http
        .post(u("/v1/tx"))
        .body(vec![0xff; 40])
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(resp).await.1.error.code, "malformed_transaction");

    // Oversized transaction body. Over a raw socket: the server answers and
    // closes before reading the body, and an HTTP client still writing it
    // may see the broken pipe before the answer.
    let addr = server.url.trim_start_matches("http://").to_string();
    let (status, body) = raw_http(
        &addr,
        "POST /v1/tx HTTP/1.1\r\nHost: x\r\nContent-Length: 2097152\r\nConnection: close\r\n\r\n",
        &vec![0u8; 2 << 20],
    )
    .await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("too_large"), "{body}");

    // Oversized blob: declared too large (refused before any byte is read),
    // and streamed without a length (refused as it crosses the limit).
    let uploader = ed25519_dalek::SigningKey::from_bytes(&[66; 32]);
    let upload_auth = http::authorization_header(&rr_node::Authorization::sign(
        &uploader,
        &server.node.replica_set().digest(),
        rr_node::Authorization::upload_scope(),
    ));
    let (status, body) = raw_http(
        &addr,
        &format!("POST /v1/blobs HTTP/1.1\r\nHost: x\r\nAuthorization: {upload_auth}\r\nContent-Length: 2097152\r\nConnection: close\r\n\r\n"),
        &[],
    )
    .await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("too_large"), "{body}");
    let chunk = vec![2u8; 64 * 1024];
    let mut chunked = Vec::new();
    for _ in 0..17 {
        chunked.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        chunked.extend_from_slice(&chunk);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let (status, body) = raw_http(
        &addr,
        &format!("POST /v1/blobs HTTP/1.1\r\nHost: x\r\nAuthorization: {upload_auth}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"),
        &chunked,
    )
    .await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("too_large"), "{body}");
    // Neither left a blob behind.
    let blobs_dir = server._dir.path().join("blobs").join("blobs");
    let stored = walk_files(&blobs_dir);
    assert!(stored.is_empty(), "oversized uploads left {stored:?}");

    // Unknown and malformed ids.
    // An unknown record: a read without an authorization is 401; with one,
    // the 404 anyone gets for a record they may not read (only replicas
    // are given the proof of an absence).
    let unknown = RecordId([7; 32]);
    let stranger = ed25519_dalek::SigningKey::from_bytes(&[65; 32]);
    let digest = server.node.replica_set().digest();
    let resp = http
        .get(u(&format!("/v1/records/{unknown}")))
        .send()
        .await
        .unwrap();
    let (status, body) = error_of(resp).await;
    assert_eq!((status, body.error.code.as_str()), (401, "unauthorized"));
    let auth = rr_node::Authorization::sign(
        &stranger,
        &digest,
        rr_node::Authorization::record_scope(&unknown),
    );
    let resp = http
        .get(u(&format!("/v1/records/{unknown}")))
        .header("authorization", http::authorization_header(&auth))
        .send()
        .await
        .unwrap();
    let (status, body) = error_of(resp).await;
    assert_eq!((status, body.error.code.as_str()), (404, "unknown_record"));
    let resp = http.get(u("/v1/records/not-an-id")).send().await.unwrap();
    let (status, body) = error_of(resp).await;
    assert_eq!(
        (status, body.error.code.as_str()),
        (400, "malformed_request")
    );
    assert!(
        body.error.message.contains("64 hex digits"),
        "{}",
        body.error.message
    );
    let resp = http
        .get(u(
            "/v1/blobs/bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e",
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(resp).await.1.error.code, "unknown_blob");
    let unknown_tx = rr_core::TxId(unknown.0);
    let auth = rr_node::Authorization::sign(
        &stranger,
        &digest,
        rr_node::Authorization::receipt_scope(&unknown_tx),
    );
    let resp = http
        .get(u(&format!("/v1/tx/{unknown_tx}")))
        .header("authorization", http::authorization_header(&auth))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(resp).await.1.error.code, "unknown_transaction");
    let resp = http.get(u("/v2/nothing")).send().await.unwrap();
    assert_eq!(error_of(resp).await.0, 404);

    // Audit without, or with someone else's, authorization.
    let alice = server.client(Identity::generate(&Umbral));
    let put = alice
        .put(byte_stream_of(b"x".to_vec()), "text/plain")
        .await
        .unwrap();
    let resp = http
        .get(u(&format!("/v1/records/{}/audit", put.record_id)))
        .send()
        .await
        .unwrap();
    let (status, body) = error_of(resp).await;
    assert_eq!((status, body.error.code.as_str()), (401, "unauthorized"));
    let mallory = ed25519_dalek::SigningKey::from_bytes(&[66; 32]);
    let auth = rr_node::Authorization::sign(
        &mallory,
        &digest,
        rr_node::Authorization::audit_scope(&put.record_id),
    );
    let resp = http
        .get(u(&format!("/v1/records/{}/audit", put.record_id)))
        .header("authorization", http::authorization_header(&auth))
        .send()
        .await
        .unwrap();
    let (status, body) = error_of(resp).await;
    assert_eq!((status, body.error.code.as_str()), (403, "forbidden"));

    // A record naming a blob the node does not hold, or of another size:
    // not admitted, nothing ordered.
    let carol = ed25519_dalek::SigningKey::from_bytes(&[67; 32]);
    let register = |cid: rr_core::ContentId, size: u64| {
        rr_core::TxBody {
            signer: rr_core::AccountId::from_verifying_key(&carol.verifying_key()),
            nonce: size,
            call: rr_core::Call::RegisterRecord(rr_core::RegisterRecord {
                salt: [5; 16],
                cid,
                size,
                scheme: rr_core::SchemeId::UMBRAL,
                record_key: vec![1; 68],
                capsule: vec![2; 180],
                media_type: "text/plain".into(),
                encrypted_metadata: None,
            }),
        }
        .sign(&carol)
        .to_bytes()
    };
    let absent = rr_core::ContentId::from_sha256([0x42; 32]);
    let resp = http
        .post(u("/v1/tx"))
        .body(register(absent, 10))
        .send()
        .await
        .unwrap();
    let (status, body) = error_of(resp).await;
    assert_eq!((status, body.error.code.as_str()), (409, "blob_not_held"));
    assert!(
        body.error.message.contains("upload the ciphertext"),
        "{}",
        body.error.message
    );
    let resp = http
        .post(u("/v1/tx"))
        .body(register(put.cid, put.size + 1))
        .send()
        .await
        .unwrap();
    let (status, body) = error_of(resp).await;
    assert_eq!(
        (status, body.error.code.as_str()),
        (400, "blob_size_mismatch")
    );

    // Nothing above changed the ledger but Alice's own put.
    let after = server.node.status();
    assert_eq!(after.height, before.height + 1);
    assert_eq!(alice.audit(put.record_id).await.unwrap().len(), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_describes_every_route_and_info_answers() {
    let server = Server::start(1 << 20).await;
    let api = HttpClient::new(&server.url).unwrap();
    let info = api.info().await.unwrap();
    assert_eq!(info.replicas, 1);
    assert_eq!(info.scheme, rr_core::SchemeId::UMBRAL);
    let doc: serde_json::Value = reqwest::get(format!("{}/v1/openapi.json", server.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let paths = doc["paths"].as_object().unwrap();
    for route in [
        "/v1/health",
        "/v1/info",
        "/v1/openapi.json",
        "/v1/tx",
        "/v1/tx/{id}",
        "/v1/retrieve",
        "/v1/grants/{id}/fragment",
        "/v1/records/{id}",
        "/v1/records/{id}/grants",
        "/v1/records/{id}/audit",
        "/v1/grants/{id}",
        "/v1/accounts/{id}/listing",
        "/v1/blobs",
        "/v1/blobs/{cid}",
        "/metrics",
    ] {
        assert!(
            paths.contains_key(route),
            "{route} is not in the OpenAPI document"
        );
    }
    // Derived from the types: every call, every refusal code.
    let schemas = &doc["components"]["schemas"];
    for call in [
        "RegisterRecord",
        "Grant",
        "Retrieve",
        "Revoke",
        "ConfirmErasure",
    ] {
        assert!(
            schemas["Call"]["oneOf"]
                .as_array()
                .unwrap()
                .iter()
                .any(|v| v["properties"].get(call).is_some()),
            "{call} is not a Call in the OpenAPI document"
        );
    }
    let codes = serde_json::to_string(&schemas["ErrorCode"]).unwrap();
    for code in [
        rr_core::ErrorCode::ReplayedNonce,
        rr_core::ErrorCode::GrantRevoked,
        rr_core::ErrorCode::SingleProxyRefused,
    ] {
        assert!(codes.contains(&format!("\"{code}\"")), "{code}");
    }
    assert!(codes.contains("^policy\\\\."), "{codes}");
    assert_eq!(doc["openapi"], "3.1.0");
    let health: serde_json::Value = reqwest::get(format!("{}/v1/health", server.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    assert!(HttpClient::new("ftp://x").is_err());
    assert!(HttpClient::new("not a url").is_err());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blob_downloads_start_at_an_offset() {
    let server = Server::start(64 * 1024 * 1024).await;
    let api = HttpClient::new(&server.url).unwrap();
    // A small blob (checked before the answer starts) and one larger than
    // that, which streams.
    for len in [1_000usize, 5 * 1024 * 1024 + 7] {
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let auth = rr_node::Authorization::sign(
            &ed25519_dalek::SigningKey::from_bytes(&[67; 32]),
            &server.node.replica_set().digest(),
            rr_node::Authorization::upload_scope(),
        );
        let cid = api
            .put_blob(byte_stream_of(data.clone()), auth)
            .await
            .unwrap();
        for offset in [0, 1, len / 2, len - 1, len] {
            let rest = collect(api.get_blob_from(cid, offset as u64).await.unwrap())
                .await
                .unwrap();
            assert_eq!(rest, data[offset..], "len {len}, offset {offset}");
        }
        // Past the end: a clear error, and the blob is still whole.
        match api.get_blob_from(cid, len as u64 + 1).await {
            Err(NodeError::Remote {
                status,
                code,
                message,
            }) => {
                assert_eq!((status, code.as_str()), (416, "malformed_request"));
                assert!(message.contains("past the blob's end"), "{message}");
            }
            other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
        }
        assert_eq!(
            collect(api.get_blob(cid).await.unwrap()).await.unwrap(),
            data
        );
    }

    // A malformed query is refused.
    let http = reqwest::Client::new();
    let cid = "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e";
    for query in [
        "offset=abc",
        "offset=",
        "offset=-1",
        "from=3",
        "offset=1&x=2",
    ] {
        let resp = http
            .get(format!("{}/v1/blobs/{cid}?{query}", server.url))
            .send()
            .await
            .unwrap();
        let (status, body) = error_of(resp).await;
        assert_eq!(
            (status, body.error.code.as_str()),
            (400, "malformed_request"),
            "{query}"
        );
        assert!(
            body.error.message.contains("offset=N"),
            "{}",
            body.error.message
        );
    }
    // An unknown blob is unknown at any offset.
    let resp = http
        .get(format!("{}/v1/blobs/{cid}?offset=3", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(resp).await.1.error.code, "unknown_blob");
    server.stop().await;
}
