//! The axum server.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

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
use serde_json::json;

use super::error::ApiError;
use crate::api::NodeError;
use crate::api::{Authorization, NodeApi, OffsetPastEnd};

/// Settings of the HTTP server.
#[derive(Clone, Debug)]
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
        .layer(DefaultBodyLimit::max(body_limit));
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
        .layer(middleware::from_fn(track))
        .with_state(state)
}

/// Serves `router` on `listener` until `shutdown` resolves, then finishes the
/// requests in flight.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn track(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
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

fn decode_tx(headers: &HeaderMap, bytes: &[u8]) -> ApiResult<SignedTransaction> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
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

async fn health(State(s): State<AppState>) -> ApiResult<Json<serde_json::Value>> {
    let info = s.api.info().await?;
    Ok(Json(json!({"status": "ok", "height": info.status.height})))
}

async fn info(State(s): State<AppState>) -> ApiResult<impl IntoResponse> {
    Ok(Json(s.api.info().await?))
}

async fn head(State(s): State<AppState>) -> ApiResult<impl IntoResponse> {
    Ok(Json(s.api.head().await?))
}

async fn openapi() -> impl IntoResponse {
    Json(super::openapi::openapi_document())
}

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

async fn receipt(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let id: TxId = parse(&id)?;
    Ok(Json(s.api.receipt(id).await?))
}

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

async fn deliver_fragment(
    State(s): State<AppState>,
    Path(id): Path<String>,
    bytes: Result<Bytes, BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    let grant: GrantId = parse(&id)?;
    s.api.deliver_fragment(grant, body(bytes)?.to_vec()).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn record(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<impl IntoResponse> {
    Ok(Json(s.api.record(parse(&id)?).await?))
}

async fn grant(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<impl IntoResponse> {
    Ok(Json(s.api.grant(parse(&id)?).await?))
}

async fn grants_of_record(
    State(s): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<impl IntoResponse> {
    let id: RecordId = parse(&id)?;
    let auth = auth(&headers, Authorization::grants_scope(&id))?;
    Ok(Json(s.api.grants_of_record(id, auth).await?))
}

async fn audit(
    State(s): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<impl IntoResponse> {
    let id: RecordId = parse(&id)?;
    let auth = auth(&headers, Authorization::audit_scope(&id))?;
    Ok(Json(s.api.audit(id, auth).await?))
}

async fn listing(
    State(s): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<impl IntoResponse> {
    let account: AccountId = parse(&id)?;
    let auth = auth(&headers, Authorization::listing_scope(&account))?;
    Ok(Json(s.api.listing(account, auth).await?))
}

async fn put_blob(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<impl IntoResponse> {
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
    let cid = s
        .api
        .put_blob(Box::pin(stream))
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
    Ok((StatusCode::CREATED, Json(json!({"cid": cid}))))
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
