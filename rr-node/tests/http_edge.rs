//! The HTTP edge under hostile clients: every error is JSON, content types
//! follow the media-type rules, oversized bodies get a 413 before they are
//! read, made-up methods do not grow the metrics, slow and idle connections
//! are cut off, the connection limit holds, and `HttpClient` refuses an
//! oversized answer. Each refused request changes nothing on the node.

use std::sync::Arc;
use std::time::Duration;

use rr_node::http::{self, ConnectionLimits, ErrorBody, HttpClient, ServerConfig};
use rr_node::{DevConfig, Node, NodeApi, NodeError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Server {
    addr: String,
    node: Arc<Node<rr_node::DevTypes>>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start(config: ServerConfig, limits: ConnectionLimits) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let node = Node::open_dev(DevConfig::new(dir.path())).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(http::serve_with(
            listener,
            http::router(node.clone(), config),
            limits,
            None,
            async {
                let _ = stopped.await;
            },
        ));
        Self {
            addr,
            node,
            stop,
            task,
            _dir: dir,
        }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
        self.node.shutdown().await.unwrap();
    }
}

/// Sends `head` (and `body`), reads until the server closes or 5 s pass;
/// the status and the JSON error body, if any.
async fn raw(addr: &str, head: &str, body: &[u8]) -> (u16, Option<ErrorBody>, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let _ = stream.write_all(body).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let json = text
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str::<ErrorBody>(b.trim()).ok());
    (status, json, text)
}

fn request(method: &str, path: &str, extra: &str) -> String {
    format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra}\r\n")
}

/// Method, path, extra headers, body, expected status and code.
type Case = (
    &'static str,
    &'static str,
    &'static str,
    &'static [u8],
    u16,
    &'static str,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_is_json_with_a_code_and_changes_nothing() {
    let server = Server::start(ServerConfig::default(), ConnectionLimits::default()).await;
    let before = server.node.status();
    let cases: [Case; 6] = [
        // A method the route does not take.
        ("DELETE", "/v1/tx", "", b"", 405, "method_not_allowed"),
        // A path id that is not UTF-8.
        (
            "GET",
            "/v1/records/%FF%FE",
            "",
            b"",
            400,
            "malformed_request",
        ),
        // No such route.
        ("GET", "/v2/anything", "", b"", 404, "not_found"),
        // A content type the route does not take.
        (
            "POST",
            "/v1/tx",
            "Content-Type: text/plain\r\nContent-Length: 2\r\n",
            b"{}",
            415,
            "unsupported_media_type",
        ),
        // JSON named with other case and a parameter is still JSON: the
        // error says the JSON did not decode (not that postcard did not).
        (
            "POST",
            "/v1/tx",
            "Content-Type: Application/JSON; charset=utf-8\r\nContent-Length: 2\r\n",
            b"{}",
            400,
            "malformed_transaction",
        ),
        // A content type that is not a media type at all.
        (
            "POST",
            "/v1/retrieve",
            "Content-Type: ;;;\r\nContent-Length: 2\r\n",
            b"{}",
            415,
            "unsupported_media_type",
        ),
    ];
    for (method, path, headers, body, status, code) in cases {
        let (got, json, text) = raw(&server.addr, &request(method, path, headers), body).await;
        let json = json.unwrap_or_else(|| panic!("{method} {path}: not JSON: {text}"));
        assert_eq!(
            (got, json.error.code.as_str()),
            (status, code),
            "{method} {path}: {text}"
        );
        assert!(!json.error.message.is_empty());
        if code == "malformed_transaction" {
            assert!(
                json.error.message.contains("(JSON)"),
                "{}",
                json.error.message
            );
        }
    }
    assert_eq!(
        server.node.status().height,
        before.height,
        "nothing was ordered"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_declared_body_gets_a_413_before_it_is_sent() {
    let server = Server::start(ServerConfig::default(), ConnectionLimits::default()).await;
    for (method, path) in [
        ("POST", "/v1/tx"),
        ("POST", "/v1/retrieve"),
        (
            "PUT",
            "/v1/grants/00000000000000000000000000000000000000000000000000000000000000aa/fragment",
        ),
    ] {
        let head = request(
            method,
            path,
            "Content-Type: application/octet-stream\r\nContent-Length: 100000000000\r\n",
        );
        // No body at all: the answer must not wait for one.
        let (status, json, text) = raw(&server.addr, &head, b"").await;
        assert_eq!(status, 413, "{method} {path}: {text}");
        assert_eq!(json.unwrap().error.code, "too_large");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_methods_do_not_grow_the_metrics() {
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .unwrap();
    let server = Server::start(
        ServerConfig::default().with_metrics(handle),
        ConnectionLimits::default(),
    )
    .await;
    for i in 0..50 {
        let (status, _, _) = raw(
            &server.addr,
            &request(&format!("MADEUP{i}"), "/v1/info", ""),
            b"",
        )
        .await;
        assert_eq!(status, 405);
    }
    let (_, _, text) = raw(&server.addr, &request("GET", "/metrics", ""), b"").await;
    assert!(!text.contains("MADEUP"), "made-up methods became labels");
    assert!(text.contains("method=\"other\""), "{text}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_and_idle_connections_are_cut_off() {
    let mut limits = ConnectionLimits::default();
    limits.header_read_timeout = Duration::from_millis(500);
    limits.idle_timeout = Duration::from_secs(1);
    let server = Server::start(ServerConfig::default(), limits).await;
    // Half a request line, then nothing.
    let mut slow = TcpStream::connect(&server.addr).await.unwrap();
    slow.write_all(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // A connection that never sends a byte.
    let mut idle = TcpStream::connect(&server.addr).await.unwrap();
    for (what, stream) in [("slow headers", &mut slow), ("idle", &mut idle)] {
        let mut buf = Vec::new();
        let closed =
            tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut buf)).await;
        assert!(
            closed.is_ok(),
            "{what}: the server kept the connection open"
        );
    }
    // The node still serves everyone else.
    let (status, _, _) = raw(&server.addr, &request("GET", "/v1/health", ""), b"").await;
    assert_eq!(status, 200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_limit_holds_and_frees_up() {
    let mut limits = ConnectionLimits::default();
    limits.max_connections = 2;
    let server = Server::start(ServerConfig::default(), limits).await;
    let first = TcpStream::connect(&server.addr).await.unwrap();
    let second = TcpStream::connect(&server.addr).await.unwrap();
    // Give the server a moment to take both.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut third = TcpStream::connect(&server.addr).await.unwrap();
    third
        .write_all(request("GET", "/v1/health", "").as_bytes())
        .await
        .unwrap();
    let mut buf = [0u8; 1];
    let early = tokio::time::timeout(Duration::from_millis(500), third.read(&mut buf)).await;
    assert!(
        early.is_err(),
        "a third connection was served beyond the limit of 2"
    );
    drop(first);
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), third.read_to_end(&mut out))
        .await
        .expect("served once a connection closed")
        .unwrap();
    assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 200"));
    drop(second);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_refuses_an_answer_over_its_limit() {
    // A "node" that declares a 100 MB answer.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000000\r\n\r\n{\"replica\":")
                .await;
        }
    });
    let client = HttpClient::new(&url).unwrap();
    match client.info().await {
        Err(NodeError::Transport(m)) => assert!(m.contains("over"), "{m}"),
        other => panic!("an oversized answer was read: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_only_clients_that_pin_its_ca() {
    let ca = http::tls::LocalCa::generate("test CA").unwrap();
    let issued = ca.issue(&["127.0.0.1".to_string()]).unwrap();
    let tls =
        http::tls::server_config(issued.cert_pem.as_bytes(), issued.key_pem.as_bytes()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let node = Node::open_dev(DevConfig::new(dir.path())).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(http::serve_with(
        listener,
        http::router(node.clone(), ServerConfig::default()),
        ConnectionLimits::default(),
        Some(tls),
        async {
            let _ = stopped.await;
        },
    ));
    let https = format!("https://{addr}");
    // The pinned CA: served.
    let pinned = HttpClient::with_ca(&https, &ca.cert_pem()).unwrap();
    assert_eq!(pinned.info().await.unwrap().replica, node.info().replica);
    // Another CA, or the system's roots: refused in the handshake.
    let other = http::tls::LocalCa::generate("someone else").unwrap();
    for (what, client) in [
        (
            "another CA",
            HttpClient::with_ca(&https, &other.cert_pem()).unwrap(),
        ),
        ("the system roots", HttpClient::new(&https).unwrap()),
    ] {
        match client.info().await {
            Err(NodeError::Transport(_)) => {}
            other => panic!("{what}: {other:?}"),
        }
    }
    // Plain HTTP to the TLS port gets no answer; a pinned CA on an http://
    // URL is refused up front.
    match HttpClient::new(&format!("http://{addr}"))
        .unwrap()
        .info()
        .await
    {
        Err(NodeError::Transport(_)) => {}
        other => panic!("plain HTTP to the TLS port: {other:?}"),
    }
    assert!(matches!(
        HttpClient::with_ca(&format!("http://{addr}"), &ca.cert_pem()),
        Err(NodeError::Setup(_))
    ));
    // A key that is not the certificate's is refused when the server starts.
    let stranger = ca.issue(&["127.0.0.1".to_string()]).unwrap();
    assert!(
        http::tls::server_config(issued.cert_pem.as_bytes(), stranger.key_pem.as_bytes()).is_err()
    );
    let _ = stop.send(());
    task.await.unwrap().unwrap();
    node.shutdown().await.unwrap();
}
