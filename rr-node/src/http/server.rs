//! The axum server.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, MatchedPath, Path, RawQuery, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use futures::TryStreamExt;
use metrics_exporter_prometheus::PrometheusHandle;
use rr_core::{
    AccountId, ContentId, DecodeError, GrantId, RecordId, SignedTransaction, TxId, MAX_TX_BYTES,
};

use super::error::ApiError;
use crate::api::NodeError;
use crate::api::{Authorization, NodeApi, OffsetPastEnd};

/// Settings of the HTTP server.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Largest blob upload, in bytes (the blob store enforces it as it streams).
    pub max_blob_bytes: u64,
    /// Largest body of any other request, in bytes (default 256 KiB: a
    /// transaction is at most 64 KiB, hex-encoded JSON doubles it).
    pub max_body_bytes: usize,
    /// Where `/metrics` reads from; `None` serves no metrics.
    pub metrics: Option<PrometheusHandle>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_blob_bytes: 16 << 30,
            max_body_bytes: 4 * MAX_TX_BYTES,
            metrics: None,
        }
    }
}

#[derive(Clone)]
struct AppState {
    api: Arc<dyn NodeApi>,
    config: Arc<ServerConfig>,
}

type ApiResult<T> = Result<T, ApiError>;

impl ServerConfig {
    /// The defaults with `max_blob_bytes` as the largest blob upload.
    pub fn with_max_blob_bytes(mut self, max_blob_bytes: u64) -> Self {
        self.max_blob_bytes = max_blob_bytes;
        self
    }

    /// The defaults with `handle` serving `/metrics`.
    pub fn with_metrics(mut self, handle: PrometheusHandle) -> Self {
        self.metrics = Some(handle);
        self
    }
}

/// Limits of the connections [`serve_with`] accepts, so that slow or idle
/// clients cannot hold a node's sockets and memory.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ConnectionLimits {
    /// Most connections served at once; more wait in the listen backlog
    /// (default 1024).
    pub max_connections: usize,
    /// How long a client may take to send a request's headers (default
    /// 10 s): a client trickling them is cut off.
    pub header_read_timeout: Duration,
    /// Longest pause within a request body (default 30 s; a body may take
    /// longer as long as it keeps coming).
    pub body_idle_timeout: Duration,
    /// Longest a connection may go without reading or writing a byte
    /// (default 120 s, above the longest a call may wait to be ordered).
    pub idle_timeout: Duration,
    /// How long a shutdown waits for requests in flight (default 30 s).
    pub shutdown_grace: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            header_read_timeout: Duration::from_secs(10),
            body_idle_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(120),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// HTTP methods the metrics name; any other is counted as `other`, so made-up
/// methods cannot grow the metrics without bound.
const KNOWN_METHODS: [&str; 7] = ["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"];

/// The `/v1` API (and `/metrics`) over `api`.
pub fn router(api: Arc<dyn NodeApi>, config: ServerConfig) -> Router {
    let body_limit = config.max_body_bytes;
    let state = AppState {
        api,
        config: Arc::new(config),
    };
    let small = Router::new()
        .route("/v1/tx", post(submit))
        .route("/v1/retrieve", post(retrieve))
        .route("/v1/grants/{id}/fragment", put(deliver_fragment))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(
            body_limit,
            refuse_declared_oversize,
        ));
    let blobs = Router::new()
        .route("/v1/blobs", post(put_blob))
        .layer(DefaultBodyLimit::disable());
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/info", get(info))
        .route("/v1/head", get(head))
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/tx/{id}", get(receipt))
        .route("/v1/records/{id}", get(record))
        .route("/v1/records/{id}/grants", get(grants_of_record))
        .route("/v1/records/{id}/audit", get(audit))
        .route("/v1/grants/{id}", get(grant))
        .route("/v1/accounts/{id}/listing", get(listing))
        .route("/v1/blobs/{cid}", get(get_blob))
        .route("/metrics", get(metrics_text))
        .merge(small)
        .merge(blobs)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(json_errors))
        .layer(middleware::from_fn(track))
        .with_state(state)
}

/// Every route of [`router`], for the OpenAPI document (`super::openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    health,
    info,
    head,
    openapi,
    submit,
    receipt,
    retrieve,
    deliver_fragment,
    record,
    grants_of_record,
    audit,
    grant,
    listing,
    put_blob,
    get_blob,
    metrics_text
))]
pub(super) struct Routes;

/// Serves `router` on `listener` with the default [`ConnectionLimits`] until
/// `shutdown` resolves, then finishes the requests in flight.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(
        listener,
        router,
        ConnectionLimits::default(),
        None,
        shutdown,
    )
    .await
}

/// Serves `router` on `listener` within `limits`, over TLS with `tls` (see
/// [`super::tls::server_config`]) or plain HTTP without, until `shutdown`
/// resolves; then stops accepting and gives the requests in flight
/// `limits.shutdown_grace` to finish. A TLS handshake must complete within
/// `limits.header_read_timeout`.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    router: Router,
    limits: ConnectionLimits,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    use hyper_util::rt::{TokioIo, TokioTimer};
    let permits = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let service = tower_http::timeout::RequestBodyTimeout::new(router, limits.body_idle_timeout);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            permit = permits.clone().acquire_owned() => permit.map_err(std::io::Error::other)?,
        };
        let (stream, _peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                // Out of file descriptors and the like: wait, do not spin.
                Err(e) => {
                    tracing::warn!(target: "rr_node::http", error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let stream = IdleTimeout::new(stream, limits.idle_timeout);
        let hyper_service = hyper_util::service::TowerToHyperService::new(service.clone());
        let watcher = graceful.watcher();
        let builder = builder.clone();
        let acceptor = acceptor.clone();
        let handshake = limits.header_read_timeout;
        tokio::spawn(async move {
            // No upgrades: the API has no WebSocket or CONNECT route.
            match acceptor {
                None => {
                    let conn = builder.serve_connection(TokioIo::new(stream), hyper_service);
                    let _ = watcher.watch(conn).await;
                }
                Some(acceptor) => match tokio::time::timeout(handshake, acceptor.accept(stream))
                    .await
                {
                    Ok(Ok(tls)) => {
                        let conn = builder.serve_connection(TokioIo::new(tls), hyper_service);
                        let _ = watcher.watch(conn).await;
                    }
                    Ok(Err(e)) => {
                        tracing::debug!(target: "rr_node::http", error = %e, "TLS handshake failed")
                    }
                    Err(_) => tracing::debug!(target: "rr_node::http", "TLS handshake timed out"),
                },
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(target: "rr_node::http", "requests still in flight after the shutdown grace; closing them");
    }
    Ok(())
}

/// A connection that fails once it has neither read nor written a byte for
/// `timeout`, so an idle or stalled client does not hold it open.
struct IdleTimeout<T> {
    inner: T,
    timeout: Duration,
    deadline: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl<T> IdleTimeout<T> {
    fn new(inner: T, timeout: Duration) -> Self {
        Self {
            inner,
            timeout,
            deadline: Box::pin(tokio::time::sleep(timeout)),
        }
    }

    fn progress(&mut self) {
        let next = tokio::time::Instant::now() + self.timeout;
        self.deadline.as_mut().reset(next);
    }

    /// `Pending`, unless the connection has been idle too long.
    fn check(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        match self.deadline.as_mut().poll(cx) {
            std::task::Poll::Ready(()) => std::task::Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "connection idle for too long",
            ))),
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    }
}

impl<T: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for IdleTimeout<T> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        match std::pin::Pin::new(&mut self.inner).poll_read(cx, buf) {
            std::task::Poll::Ready(r) => {
                if buf.filled().len() > before {
                    self.progress();
                }
                std::task::Poll::Ready(r)
            }
            std::task::Poll::Pending => self.check(cx),
        }
    }
}

impl<T: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for IdleTimeout<T> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match std::pin::Pin::new(&mut self.inner).poll_write(cx, data) {
            std::task::Poll::Ready(r) => {
                if matches!(r, Ok(n) if n > 0) {
                    self.progress();
                }
                std::task::Poll::Ready(r)
            }
            std::task::Poll::Pending => match self.check(cx) {
                std::task::Poll::Ready(Err(e)) => std::task::Poll::Ready(Err(e)),
                _ => std::task::Poll::Pending,
            },
        }
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs) {
            std::task::Poll::Ready(r) => {
                if matches!(r, Ok(n) if n > 0) {
                    self.progress();
                }
                std::task::Poll::Ready(r)
            }
            std::task::Poll::Pending => match self.check(cx) {
                std::task::Poll::Ready(Err(e)) => std::task::Poll::Ready(Err(e)),
                _ => std::task::Poll::Pending,
            },
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// A 413 as soon as the headers declare a body over `limit`, before any of
/// it is read.
async fn refuse_declared_oversize(
    State(limit): State<usize>,
    req: Request,
    next: Next,
) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!(
                "the body declares {} bytes; this route takes at most {limit}",
                declared.unwrap_or_default()
            ),
        )
        .into_response();
    }
    next.run(req).await
}

/// Every error the router itself makes (a path that does not decode, a
/// rejected extractor, a body over the limit) as the same JSON as the
/// handlers' errors.
async fn json_errors(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::NOT_FOUND => "not_found",
        s if s.is_server_error() => "internal",
        _ => "malformed_request",
    };
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let detail = String::from_utf8_lossy(&text).trim().to_string();
    let message = if detail.is_empty() {
        format!("{status}; see /v1/openapi.json")
    } else {
        format!("{detail}; see /v1/openapi.json")
    };
    let mut out = ApiError::new(status, code, message).into_response();
    for (name, value) in parts.headers.iter() {
        if name == header::ALLOW {
            out.headers_mut().insert(name, value.clone());
        }
    }
    out
}

async fn method_not_allowed(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{} is not a method of {}; see /v1/openapi.json",
            method_label(req.method()),
            req.uri().path()
        ),
    )
}

/// The method as metrics and messages name it: a known one, or `other`.
fn method_label(method: &axum::http::Method) -> &'static str {
    KNOWN_METHODS
        .iter()
        .find(|m| **m == method.as_str())
        .copied()
        .unwrap_or("other")
}

async fn track(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = method_label(req.method());
    let started = Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("rr_http_requests_total", "route" => route.clone(), "method" => method, "status" => status)
        .increment(1);
    metrics::histogram!("rr_http_request_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

fn parse<T: std::str::FromStr<Err = DecodeError>>(s: &str) -> ApiResult<T> {
    s.parse::<T>()
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "malformed_request", e.to_string()))
}

fn body(bytes: Result<Bytes, BytesRejection>) -> ApiResult<Bytes> {
    bytes.map_err(|e| {
        let status = e.status();
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "too_large"
        } else {
            "malformed_request"
        };
        ApiError::new(status, code, e.body_text())
    })
}

/// Whether a signed call's body is JSON (`application/json`) or postcard
/// (`application/octet-stream`, or no Content-Type), by the media-type
/// rules: type and subtype are case-insensitive and parameters are allowed.
fn tx_is_json(headers: &HeaderMap) -> ApiResult<bool> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(false);
    };
    let unsupported = |what: String| {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("{what}; send a signed call as application/json or as postcard bytes (application/octet-stream)"),
        )
    };
    let text = value
        .to_str()
        .map_err(|_| unsupported("the Content-Type header is not text".into()))?;
    let media: mime::Mime = text
        .parse()
        .map_err(|_| unsupported(format!("Content-Type {text:?} is not a media type")))?;
    match (media.type_(), media.subtype()) {
        (mime::APPLICATION, mime::JSON) => Ok(true),
        (mime::APPLICATION, mime::OCTET_STREAM) => Ok(false),
        _ => Err(unsupported(format!(
            "Content-Type {} is not accepted here",
            media.essence_str()
        ))),
    }
}

fn decode_tx(headers: &HeaderMap, bytes: &[u8]) -> ApiResult<SignedTransaction> {
    let json = tx_is_json(headers)?;
    let tx = if json {
        serde_json::from_slice(bytes).map_err(|e| {
            NodeError::BadTransaction(DecodeError::Malformed {
                what: "transaction (JSON)",
                reason: e.to_string(),
            })
        })?
    } else {
        SignedTransaction::from_bytes(bytes).map_err(NodeError::BadTransaction)?
    };
    Ok(tx)
}

fn auth(headers: &HeaderMap, scope: String) -> ApiResult<Authorization> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| {
            NodeError::Unauthorized(format!(
                "this request needs an `Authorization: {} ...` header signed by the account",
                super::AUTHORIZATION_SCHEME
            ))
        })?
        .to_str()
        .map_err(|_| NodeError::Unauthorized("the Authorization header is not text".into()))?;
    Ok(super::parse_authorization_header(value, scope)?)
}

/// Liveness and ledger height
#[utoipa::path(get, path = "/v1/health", operation_id = "health",
    responses((status = 200, description = "Serving", body = super::openapi::Health)))]
async fn health(State(s): State<AppState>) -> ApiResult<Json<super::openapi::Health>> {
    let info = s.api.info().await?;
    Ok(Json(super::openapi::Health {
        status: super::openapi::HealthStatus::Ok,
        height: info.status.height,
    }))
}

/// Replica set, schemes, n, f and ledger status
///
/// Not proven: a client takes the replica set from its own configuration,
/// never from this answer.
#[utoipa::path(get, path = "/v1/info", operation_id = "info",
    responses((status = 200, description = "Node info (unproven)", body = crate::api::NodeInfo)))]
async fn info(State(s): State<AppState>) -> ApiResult<impl IntoResponse> {
    Ok(Json(s.api.info().await?))
}

/// The certificate of this replica's head
///
/// Its latest ledger header, signed by a quorum of the replica set.
#[utoipa::path(get, path = "/v1/head", operation_id = "head",
    responses((status = 200, description = "The head's certificate", body = rr_core::cert::Certificate)))]
async fn head(State(s): State<AppState>) -> ApiResult<impl IntoResponse> {
    Ok(Json(s.api.head().await?))
}

/// This document
#[utoipa::path(get, path = "/v1/openapi.json", operation_id = "openapi",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API", body = Object)))]
async fn openapi() -> impl IntoResponse {
    Json(super::openapi::openapi_document())
}

/// Submit a signed call
///
/// Answers with its certified receipt once committed: a call the contracts
/// refuse is a 200 too, with a receipt whose outcome is `Refused`.
/// Submitting the same transaction again answers its original receipt and
/// orders nothing.
#[utoipa::path(post, path = "/v1/tx", operation_id = "submit",
    request_body(description = super::openapi::TX_BODY, content(
        (rr_core::SignedTransaction = "application/json"),
        (super::openapi::Binary = "application/octet-stream"))),
    responses((status = 200, description = "Certified receipt, the call allowed or refused", body = rr_core::proof::CertifiedReceipt)))]
async fn submit(
    State(s): State<AppState>,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    let tx = decode_tx(&headers, &body(bytes)?)?;
    let call = tx.body.call.name();
    let receipt = s.api.submit(tx).await?;
    let outcome = match &receipt.receipt.outcome {
        rr_core::Outcome::Ok(_) => "ok".to_string(),
        rr_core::Outcome::Refused(r) => r.code.as_str().to_string(),
    };
    metrics::counter!("rr_calls_total", "call" => call, "outcome" => outcome).increment(1);
    Ok(Json(receipt))
}

/// Certified receipt of a committed transaction (its signer and replicas only)
///
/// Authorization scope `tx <id>`, signed by the transaction's signer or a
/// replica; anyone else gets the 404 of an unknown transaction.
#[utoipa::path(get, path = "/v1/tx/{id}", operation_id = "receipt",
    params(("id" = rr_core::TxId, Path, description = "Transaction id: BLAKE3 of the signed transaction's postcard encoding")),
    security(("rr_ed25519" = [])),
    responses((status = 200, description = "Certified receipt", body = rr_core::proof::CertifiedReceipt)))]
async fn receipt(
    State(s): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<impl IntoResponse> {
    let id: TxId = parse(&id)?;
    let auth = auth(&headers, Authorization::receipt_scope(&id))?;
    Ok(Json(s.api.receipt(id, auth).await?))
}

/// Submit a signed Retrieve call
///
/// Answers with its certified receipt (allowed or refused: a refusal is a
/// 200 too), the grant and its record proven at this replica's head, and,
/// if the grant is usable there and this replica holds its key fragment,
/// this replica's capsule fragment signed with its replica key.
#[utoipa::path(post, path = "/v1/retrieve", operation_id = "retrieve",
    request_body(description = super::openapi::TX_BODY, content(
        (rr_core::SignedTransaction = "application/json"),
        (super::openapi::Binary = "application/octet-stream"))),
    responses((status = 200, description = "Retrieval, the call allowed or refused", body = crate::api::Retrieval)))]
async fn retrieve(
    State(s): State<AppState>,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    let tx = decode_tx(&headers, &body(bytes)?)?;
    let retrieval = s.api.retrieve(tx).await;
    let outcome = match &retrieval {
        Ok(r) => match &r.receipt.receipt.outcome {
            rr_core::Outcome::Ok(_) if r.fragment.is_some() => "ok".to_string(),
            rr_core::Outcome::Ok(_) => "no_fragment".to_string(),
            rr_core::Outcome::Refused(r) => r.code.as_str().to_string(),
        },
        Err(e) => super::error::classify(e).1.to_string(),
    };
    metrics::counter!("rr_calls_total", "call" => "retrieve", "outcome" => outcome).increment(1);
    Ok(Json(retrieval?))
}

/// Deliver this replica's key fragment of a committed grant
///
/// Checked against the grant's commitment for this replica (a cluster
/// replica takes only a fragment sealed to it), verified against the
/// record's and the grantee's keys, then stored. A cluster replica that
/// has not committed the grant yet waits up to 5 s for it.
#[utoipa::path(put, path = "/v1/grants/{id}/fragment", operation_id = "deliverFragment",
    params(("id" = rr_core::GrantId, Path, description = "Grant id")),
    request_body(description = "The key fragment: its scheme's encoding, sealed to this replica on a cluster (docs/protocol.md section 9)",
        content = super::openapi::Binary, content_type = "application/octet-stream"),
    responses((status = 204, description = "Checked and stored")))]
async fn deliver_fragment(
    State(s): State<AppState>,
    Path(id): Path<String>,
    bytes: Result<Bytes, BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    let grant: GrantId = parse(&id)?;
    s.api.deliver_fragment(grant, body(bytes)?.to_vec()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A record's public metadata, proven (owner, grantees and replicas only)
///
/// Entry (records, id): the record's postcard encoding (to a replica: or
/// null with a proof that there is none). Authorization scope
/// `record <id>`, signed by the record's owner, an account holding a grant
/// of it, or a replica; anyone else gets the 404 of an unknown record.
#[utoipa::path(get, path = "/v1/records/{id}", operation_id = "record",
    params(("id" = rr_core::RecordId, Path, description = "Record id")),
    security(("rr_ed25519" = [])),
    responses((status = 200, description = "Proven state", body = rr_core::proof::StateAnswer)))]
async fn record(
    State(s): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<impl IntoResponse> {
    let id: RecordId = parse(&id)?;
    let auth = auth(&headers, Authorization::record_scope(&id))?;
    Ok(Json(s.api.record(id, auth).await?))
}

/// A grant, proven (the record's owner, the grantee and replicas only)
///
/// Entry (grants, id): the grant's postcard encoding (to a replica: or
/// null with a proof that there is none). Authorization scope
/// `grant <id>`, signed by the record's owner, the grantee or a replica;
/// anyone else gets the 404 of an unknown grant.
#[utoipa::path(get, path = "/v1/grants/{id}", operation_id = "grant",
    params(("id" = rr_core::GrantId, Path, description = "Grant id")),
    security(("rr_ed25519" = [])),
    responses((status = 200, description = "Proven state", body = rr_core::proof::StateAnswer)))]
async fn grant(
    State(s): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<impl IntoResponse> {
    let id: GrantId = parse(&id)?;
    let auth = auth(&headers, Authorization::grant_scope(&id))?;
    Ok(Json(s.api.grant(id, auth).await?))
}

/// A record and its complete list of grants, proven (owner only)
///
/// Entries: (records, id), the count (counts, 03 ‖ id), each index entry
/// (record_grants, id ‖ be64(i)) and each grant. Authorization scope
/// `grants <id>`, signed by the record's owner.
#[utoipa::path(get, path = "/v1/records/{id}/grants", operation_id = "grantsOfRecord",
    params(("id" = rr_core::RecordId, Path, description = "Record id")),
    security(("rr_ed25519" = [])),
    responses((status = 200, description = "Proven state", body = rr_core::proof::StateAnswer)))]
async fn grants_of_record(
    State(s): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<impl IntoResponse> {
    let id: RecordId = parse(&id)?;
    let auth = auth(&headers, Authorization::grants_scope(&id))?;
    Ok(Json(s.api.grants_of_record(id, auth).await?))
}

/// A record and its whole audit trail, proven (owner only)
///
/// Entries: (records, id) and each (audit, id ‖ be64(seq)) below the
/// record's `audit_len`. Authorization scope `audit <id>`, signed by the
/// record's owner.
#[utoipa::path(get, path = "/v1/records/{id}/audit", operation_id = "audit",
    params(("id" = rr_core::RecordId, Path, description = "Record id")),
    security(("rr_ed25519" = [])),
    responses((status = 200, description = "Proven state", body = rr_core::proof::StateAnswer)))]
async fn audit(
    State(s): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<impl IntoResponse> {
    let id: RecordId = parse(&id)?;
    let auth = auth(&headers, Authorization::audit_scope(&id))?;
    Ok(Json(s.api.audit(id, auth).await?))
}

/// The records an account owns and the grants it holds, complete and proven
///
/// Entries: (counts, 01 ‖ a), each (owner_records, a ‖ be64(i)) and record,
/// (counts, 02 ‖ a), each (grantee_grants, a ‖ be64(i)) and grant. That
/// account only: Authorization scope `list <id>`, signed by the account.
#[utoipa::path(get, path = "/v1/accounts/{id}/listing", operation_id = "listing",
    params(("id" = rr_core::AccountId, Path, description = "Account id: its ed25519 public key")),
    security(("rr_ed25519" = [])),
    responses((status = 200, description = "Proven state", body = rr_core::proof::StateAnswer)))]
async fn listing(
    State(s): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<impl IntoResponse> {
    let account: AccountId = parse(&id)?;
    let auth = auth(&headers, Authorization::listing_scope(&account))?;
    Ok(Json(s.api.listing(account, auth).await?))
}

/// Store a ciphertext blob, streamed
///
/// Answers with its CIDv1 (raw codec, sha2-256). Chunked uploads are
/// allowed; the node's `max_blob_size` (default 16 GiB) limits the size.
/// Authorization scope `upload`, signed by the uploading account: until a
/// committed record names the blob, its bytes count against that account's
/// quota of unreferenced uploads (`upload_quota_bytes`, default 4 GiB) and
/// the node's cap on all of them (`max_unreferenced_bytes`, default
/// 64 GiB); an upload past either is refused before it is stored (413 or
/// 507 `quota_exceeded`). A blob no record names within the node's grace
/// period (`unreferenced_grace`, default 24 h) is deleted.
#[utoipa::path(post, path = "/v1/blobs", operation_id = "putBlob",
    security(("rr_ed25519" = [])),
    request_body(description = "The blob; no body stores the empty blob",
        content = super::openapi::Binary, content_type = "application/octet-stream"),
    responses((status = 201, description = "Stored", body = super::openapi::BlobCreated)))]
async fn put_blob(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<impl IntoResponse> {
    let auth = auth(&headers, Authorization::upload_scope())?;
    let limit = s.config.max_blob_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(NodeError::Blob(rr_core::BlobError::TooLarge { limit }).into());
    }
    // Enforce the limit on the stream itself: a chunked upload declares no length.
    let mut seen = 0u64;
    let stream = body
        .into_data_stream()
        .map_err(|e| std::io::Error::other(e.to_string()))
        .and_then(move |chunk| {
            seen += chunk.len() as u64;
            let over = seen > limit;
            async move {
                if over {
                    Err(rr_core::BlobError::TooLarge { limit }.into_io())
                } else {
                    Ok(chunk)
                }
            }
        });
    let stream = DeclaredLength {
        inner: Box::pin(stream),
        declared,
    };
    let cid = s
        .api
        .put_blob(Box::pin(stream), auth)
        .await
        .map_err(|e| match e {
            NodeError::Blob(rr_core::BlobError::Source(io))
                if matches!(
                    rr_core::BlobError::from_io(&io),
                    Some(rr_core::BlobError::TooLarge { .. })
                ) =>
            {
                NodeError::Blob(rr_core::BlobError::TooLarge { limit })
            }
            other => other,
        })?;
    Ok((
        StatusCode::CREATED,
        Json(super::openapi::BlobCreated { cid }),
    ))
}

/// An upload's body stream, reporting the length its Content-Length
/// declared as its size hint, so the node refuses an upload over its quota
/// before reading it.
struct DeclaredLength<S> {
    inner: S,
    declared: Option<u64>,
}

impl<S: futures::Stream + Unpin> futures::Stream for DeclaredLength<S> {
    type Item = S::Item;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        std::pin::Pin::new(&mut self.inner).poll_next(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self.declared.and_then(|n| usize::try_from(n).ok()) {
            Some(n) => (n, Some(n)),
            None => (0, None),
        }
    }
}

/// Blobs up to this size are read and checked before the response starts, so
/// a damaged copy gets a JSON `integrity` error instead of a broken stream.
const CHECKED_BEFORE_SENDING: usize = 4 * 1024 * 1024;

/// The byte offset a blob download starts at: `?offset=N`, or 0 without a
/// query.
fn blob_offset(query: Option<&str>) -> ApiResult<u64> {
    let query = query.unwrap_or("");
    if query.is_empty() {
        return Ok(0);
    }
    query
        .strip_prefix("offset=")
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|n| n.parse::<u64>().ok())
        // The OpenAPI document says int64: larger is malformed, not past the end.
        .filter(|n| *n <= i64::MAX as u64)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed_request",
                format!(
                    "a blob download takes one query, offset=N (the bytes to skip, a decimal u64), not {query:?}"
                ),
            )
        })
}

/// Stream a blob, from byte `offset` on
///
/// The node checks its copy against the CID: a damaged copy of at most
/// 4 MiB is a 500 `integrity`; a larger one aborts the stream mid-way. With
/// `offset=N` the answer is the blob less its first N bytes (the node still
/// checks its whole copy): a client resumes a broken download with it, from
/// the same or another replica. Not an HTTP range: the answer is 200 with
/// the rest of the blob.
#[utoipa::path(get, path = "/v1/blobs/{cid}", operation_id = "getBlob",
    params(
        ("cid" = rr_core::ContentId, Path, description = "CIDv1 raw sha2-256 in base32 (bafkrei..., 59 characters)"),
        ("offset" = Option<u64>, Query, maximum = 9223372036854775807_u64,
            description = "Bytes to skip (default 0); the only query this route takes (anything else is malformed_request)")),
    responses((status = 200, description = "The blob, from offset on", body = super::openapi::Binary, content_type = "application/octet-stream")))]
async fn get_blob(
    State(s): State<AppState>,
    Path(cid): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    use futures::StreamExt;
    let cid: ContentId = parse(&cid)?;
    let offset = blob_offset(query.as_deref())?;
    let mut stream = s.api.get_blob_from(cid, offset).await?;
    // Read ahead: if the whole blob fits, it is verified before we answer.
    let mut head = Vec::new();
    let mut ended = false;
    while head.len() < CHECKED_BEFORE_SENDING {
        match stream.next().await {
            Some(Ok(chunk)) => head.extend_from_slice(&chunk),
            Some(Err(e)) => {
                if let Some(past) = OffsetPastEnd::from_io(&e) {
                    return Err(ApiError::new(
                        StatusCode::RANGE_NOT_SATISFIABLE,
                        "malformed_request",
                        past.to_string(),
                    ));
                }
                let err = match rr_core::BlobError::from_io(&e) {
                    Some(rr_core::BlobError::Integrity { cid, actual }) => {
                        rr_core::BlobError::Integrity {
                            cid: *cid,
                            actual: *actual,
                        }
                    }
                    _ => rr_core::BlobError::Backend(e),
                };
                return Err(NodeError::Blob(err).into());
            }
            None => {
                ended = true;
                break;
            }
        }
    }
    let body = if ended {
        Body::from(head)
    } else {
        // Larger blobs stream; a damaged copy aborts the stream, and the
        // client's envelope authentication refuses what it got.
        let first = futures::stream::once(async move { Ok(Bytes::from(head)) });
        Body::from_stream(first.chain(stream))
    };
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], body).into_response())
}

/// Prometheus metrics
#[utoipa::path(get, path = "/metrics", operation_id = "metrics",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
async fn metrics_text(State(s): State<AppState>) -> ApiResult<Response> {
    let Some(handle) = &s.config.metrics else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "this server was started without metrics",
        ));
    };
    if let Ok(info) = s.api.info().await {
        metrics::gauge!("rr_ledger_height").set(info.status.height as f64);
    }
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    )
        .into_response())
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such route; see /v1/openapi.json",
    )
}
