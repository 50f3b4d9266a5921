//! [`NodeApi`] over HTTP.

use futures::TryStreamExt;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use reqwest::{RequestBuilder, StatusCode};
use rr_core::cert::Certificate;
use rr_core::proof::{CertifiedReceipt, StateAnswer};
use rr_core::{AccountId, ByteStream, ContentId, GrantId, RecordId, SignedTransaction, TxId};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::api::{Authorization, NodeApi};
use crate::api::{NodeError, NodeInfo, Retrieval};

/// How long a read from a node may stall (no byte at all) before it fails.
pub const READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Largest answer read into memory from a node (blobs are streamed, not
/// read whole): 64 MiB, far above any proof, receipt or listing a node
/// sends today. A replica that sends more is not believed.
pub const MAX_ANSWER_BYTES: u64 = 64 << 20;

/// Largest error body read from a node.
const MAX_ERROR_BYTES: u64 = 64 << 10;

/// A node reached over HTTP. Cheap to clone (connection pool inside).
#[derive(Clone, Debug)]
pub struct HttpClient {
    base: reqwest::Url,
    http: reqwest::Client,
}

/// Whether `e` failed on the server's TLS certificate.
fn untrusted_certificate(e: &reqwest::Error) -> bool {
    let mut source: Option<&dyn std::error::Error> = Some(e);
    while let Some(s) = source {
        let text = s.to_string();
        if text.contains("certificate") || text.contains("UnknownIssuer") {
            return true;
        }
        source = s.source();
    }
    false
}

fn transport(base: &reqwest::Url) -> impl Fn(reqwest::Error) -> NodeError + '_ {
    move |e| {
        let what = if untrusted_certificate(&e) {
            format!("the TLS certificate of the node at {base} is not one this client trusts ({e}); for a cluster, use its cluster.json, which pins the CA that issued the replicas' certificates")
        } else if e.is_connect() {
            format!("cannot connect to the node at {base}: is it running? ({e})")
        } else if e.is_timeout() {
            format!("the node at {base} did not answer in time")
        } else {
            format!("talking to the node at {base} failed: {e}")
        };
        NodeError::Transport(what)
    }
}

impl HttpClient {
    /// A client for the node at `base_url` (such as `http://127.0.0.1:7700`).
    /// An `https://` node's certificate is checked against the system's
    /// root certificates; use [`HttpClient::with_ca`] for a cluster with a
    /// CA of its own.
    pub fn new(base_url: &str) -> Result<Self, NodeError> {
        Self::build(base_url, None)
    }

    /// A client for the node at `base_url` whose TLS certificate must be
    /// issued by the CA `ca_pem` (PEM), and by no other: what `cluster.json`
    /// pins (`ca`). A plain `http://` URL is refused, since the CA would
    /// then protect nothing.
    pub fn with_ca(base_url: &str, ca_pem: &str) -> Result<Self, NodeError> {
        Self::build(base_url, Some(ca_pem))
    }

    fn build(base_url: &str, ca_pem: Option<&str>) -> Result<Self, NodeError> {
        let base = reqwest::Url::parse(base_url).map_err(|e| {
            NodeError::Setup(format!(
                "{base_url:?} is not a node URL ({e}); expected something like http://127.0.0.1:7700"
            ))
        })?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(NodeError::Setup(format!(
                "{base_url:?} is not an http:// or https:// URL"
            )));
        }
        let mut builder = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            // A replica that stops sending mid-answer (paused, hung) fails
            // the read instead of holding the client forever.
            .read_timeout(READ_TIMEOUT);
        if let Some(ca) = ca_pem {
            if base.scheme() != "https" {
                return Err(NodeError::Setup(format!(
                    "{base_url:?} is plain http, but a CA to pin was given: use https://"
                )));
            }
            let cert = reqwest::Certificate::from_pem(ca.as_bytes()).map_err(|e| {
                NodeError::Setup(format!("the CA certificate to pin is not PEM: {e}"))
            })?;
            builder = builder
                .tls_built_in_root_certs(false)
                .add_root_certificate(cert)
                .https_only(true);
        }
        let http = builder
            .build()
            .map_err(|e| NodeError::Setup(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self { base, http })
    }

    /// The node's base URL.
    pub fn base_url(&self) -> &reqwest::Url {
        &self.base
    }

    fn url(&self, path: &str) -> reqwest::Url {
        self.base.join(path).expect("paths are valid")
    }

    async fn send(&self, req: RequestBuilder) -> Result<reqwest::Response, NodeError> {
        let resp = req.send().await.map_err(transport(&self.base))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        let body = self.read_limited(resp, MAX_ERROR_BYTES).await?;
        Err(super::error::from_response(status, &body))
    }

    /// The whole body, refused once it passes `limit` bytes (declared or
    /// streamed), so a replica cannot make the client allocate without
    /// bound.
    async fn read_limited(
        &self,
        resp: reqwest::Response,
        limit: u64,
    ) -> Result<Vec<u8>, NodeError> {
        let too_large = || {
            NodeError::Transport(format!(
                "the node at {} sent an answer over {limit} bytes; it was not read",
                self.base
            ))
        };
        if resp.content_length().is_some_and(|n| n > limit) {
            return Err(too_large());
        }
        let mut out = Vec::new();
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.try_next().await.map_err(transport(&self.base))? {
            if out.len() as u64 + chunk.len() as u64 > limit {
                return Err(too_large());
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    async fn json<T: DeserializeOwned>(&self, req: RequestBuilder) -> Result<T, NodeError> {
        let resp = self.send(req).await?;
        let bytes = self.read_limited(resp, MAX_ANSWER_BYTES).await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| NodeError::Transport(format!("the node's answer does not parse: {e}")))
    }

    fn tx(&self, path: &str, tx: &SignedTransaction) -> RequestBuilder {
        self.http
            .post(self.url(path))
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(tx.to_bytes())
    }

    fn authorized(&self, path: &str, auth: &Authorization) -> RequestBuilder {
        self.http
            .get(self.url(path))
            .header(AUTHORIZATION, super::authorization_header(auth))
    }
}

#[derive(Deserialize)]
struct Stored {
    cid: ContentId,
}

#[async_trait::async_trait]
impl NodeApi for HttpClient {
    async fn info(&self) -> Result<NodeInfo, NodeError> {
        self.json(self.http.get(self.url("/v1/info"))).await
    }

    async fn head(&self) -> Result<Certificate, NodeError> {
        self.json(self.http.get(self.url("/v1/head"))).await
    }

    async fn submit(&self, tx: SignedTransaction) -> Result<CertifiedReceipt, NodeError> {
        self.json(self.tx("/v1/tx", &tx)).await
    }

    async fn receipt(&self, tx: TxId, auth: Authorization) -> Result<CertifiedReceipt, NodeError> {
        self.json(self.authorized(&format!("/v1/tx/{tx}"), &auth))
            .await
    }

    async fn deliver_fragment(&self, grant: GrantId, fragment: Vec<u8>) -> Result<(), NodeError> {
        let req = self
            .http
            .put(self.url(&format!("/v1/grants/{grant}/fragment")))
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(fragment);
        self.send(req).await.map(|_| ())
    }

    async fn retrieve(&self, tx: SignedTransaction) -> Result<Retrieval, NodeError> {
        self.json(self.tx("/v1/retrieve", &tx)).await
    }

    async fn record(&self, id: RecordId, auth: Authorization) -> Result<StateAnswer, NodeError> {
        self.json(self.authorized(&format!("/v1/records/{id}"), &auth))
            .await
    }

    async fn grant(&self, id: GrantId, auth: Authorization) -> Result<StateAnswer, NodeError> {
        self.json(self.authorized(&format!("/v1/grants/{id}"), &auth))
            .await
    }

    async fn grants_of_record(
        &self,
        id: RecordId,
        auth: Authorization,
    ) -> Result<StateAnswer, NodeError> {
        self.json(self.authorized(&format!("/v1/records/{id}/grants"), &auth))
            .await
    }

    async fn audit(&self, id: RecordId, auth: Authorization) -> Result<StateAnswer, NodeError> {
        self.json(self.authorized(&format!("/v1/records/{id}/audit"), &auth))
            .await
    }

    async fn listing(
        &self,
        account: AccountId,
        auth: Authorization,
    ) -> Result<StateAnswer, NodeError> {
        self.json(self.authorized(&format!("/v1/accounts/{account}/listing"), &auth))
            .await
    }

    async fn put_blob(
        &self,
        data: ByteStream,
        auth: Authorization,
    ) -> Result<ContentId, NodeError> {
        let req = self
            .http
            .post(self.url("/v1/blobs"))
            .header(CONTENT_TYPE, "application/octet-stream")
            .header(AUTHORIZATION, super::authorization_header(&auth))
            .body(reqwest::Body::wrap_stream(data));
        let stored: Stored = self.json(req).await?;
        Ok(stored.cid)
    }

    async fn get_blob(&self, cid: ContentId) -> Result<ByteStream, NodeError> {
        self.get_blob_from(cid, 0).await
    }

    async fn get_blob_from(&self, cid: ContentId, offset: u64) -> Result<ByteStream, NodeError> {
        let path = match offset {
            0 => format!("/v1/blobs/{cid}"),
            n => format!("/v1/blobs/{cid}?offset={n}"),
        };
        let resp = self.send(self.http.get(self.url(&path))).await?;
        if resp.status() != StatusCode::OK {
            return Err(NodeError::Transport(format!(
                "unexpected HTTP {} for blob {cid}",
                resp.status()
            )));
        }
        // The node aborts the stream if its copy fails the integrity check;
        // the envelope's authentication catches anything else on the way.
        let stream = resp.bytes_stream().map_err(move |e| {
            std::io::Error::other(format!(
                "the download of blob {cid} broke off ({e}); the node's copy may be damaged"
            ))
        });
        Ok(Box::pin(stream))
    }
}
