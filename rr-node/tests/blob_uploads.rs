//! Blob uploads (`POST /v1/blobs`): signed by the uploading account for this
//! cluster, metered per account and node-wide while no committed record
//! names them, and swept after the grace period. Every test checks both the
//! error and that nothing was stored or lost.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use ed25519_dalek::SigningKey;
use rr_consensus::ManualClock;
use rr_core::{byte_stream_of, BlobStore, ContentId, Digest};
use rr_node::http::{self, ErrorBody, ServerConfig};
use rr_node::uploads::UploadLimits;
use rr_node::{collect, Authorization, DevConfig, Node, NodeApi, NodeError};

const QUOTA: u64 = 1_000;
const CAP: u64 = 1_500;
const GRACE: Duration = Duration::from_secs(3600);

fn limits() -> UploadLimits {
    UploadLimits::default()
        .with_quota_bytes(QUOTA)
        .with_max_unreferenced_bytes(CAP)
        .with_grace(GRACE)
}

async fn open(dir: &Path, clock: Arc<ManualClock>) -> Arc<Dev> {
    Node::open_dev_with_clock(DevConfig::new(dir).with_upload_limits(limits()), clock)
        .await
        .expect("open dev node")
}

/// A dev node with small upload limits behind HTTP.
struct Served {
    dir: tempfile::TempDir,
    node: Arc<Dev>,
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Served {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let node = open(dir.path(), Arc::new(ManualClock::new(START))).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let router = http::router(node.clone(), ServerConfig::default());
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(http::serve(listener, router, async {
            let _ = stopped.await;
        }));
        Self {
            dir,
            node,
            url,
            stop: Some(stop),
            task,
        }
    }

    fn auth_for(&self, key: &SigningKey, cluster: &Digest, scope: String) -> String {
        http::authorization_header(&Authorization::sign(key, cluster, scope))
    }

    fn upload_auth(&self, who: &Person) -> String {
        self.auth_for(
            &who.key(),
            &self.node.replica_set().digest(),
            Authorization::upload_scope(),
        )
    }

    /// POSTs `data` (with a Content-Length, or streamed without one) with
    /// `auth` as the Authorization header, if any.
    async fn post(&self, data: Vec<u8>, auth: Option<&str>, streamed: bool) -> reqwest::Response {
        let mut req = reqwest::Client::new()
            .post(format!("{}/v1/blobs", self.url))
            .header("content-type", "application/octet-stream");
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let req = if streamed {
            let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
                data.chunks(100).map(|c| Ok(c.to_vec())).collect();
            req.body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        } else {
            req.body(data)
        };
        req.send().await.unwrap()
    }

    fn stored_files(&self) -> usize {
        files(&self.dir.path().join("blobs"))
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap().unwrap();
        self.node.shutdown().await.unwrap();
    }
}

/// Files under `dir` (the blob store keeps one per blob).
fn files(dir: &Path) -> usize {
    let mut n = 0;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            n += if p.is_dir() { files(&p) } else { 1 };
        }
    }
    n
}

async fn error_of(resp: reqwest::Response) -> (u16, String, String) {
    let status = resp.status().as_u16();
    let body: ErrorBody = resp.json().await.expect("errors are JSON");
    (status, body.error.code, body.error.message)
}

fn blob(len: usize, fill: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(fill)).collect()
}

async fn cid_of(data: &[u8]) -> ContentId {
    rr_storage::MemoryBlobStore::new()
        .put_bytes(data.to_vec().into())
        .await
        .unwrap()
}

async fn upload(node: &Arc<Dev>, who: &Person, data: &[u8]) -> Result<ContentId, NodeError> {
    NodeApi::put_blob(
        &**node,
        byte_stream_of(data.to_vec()),
        who.upload_auth(node),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_without_a_valid_authorization_are_401_and_store_nothing() {
    let s = Served::start().await;
    let (alice, mallory) = (Person::new(), Person::new());
    let data = blob(300, 3);
    let here = s.node.replica_set().digest();

    // No authorization at all, declared or streamed.
    for streamed in [false, true] {
        let (status, code, message) = error_of(s.post(data.clone(), None, streamed).await).await;
        assert_eq!((status, code.as_str()), (401, "unauthorized"), "{message}");
    }
    // Signed for another cluster.
    let elsewhere = s.auth_for(
        &alice.key(),
        &Digest([9; 32]),
        Authorization::upload_scope(),
    );
    let (status, code, message) =
        error_of(s.post(data.clone(), Some(&elsewhere), false).await).await;
    assert_eq!((status, code.as_str()), (401, "unauthorized"));
    assert!(message.contains("another cluster"), "{message}");
    // Mallory's signature claiming Alice's account.
    let mut forged = Authorization::sign(&mallory.key(), &here, Authorization::upload_scope());
    forged.account = alice.account();
    let forged = http::authorization_header(&forged);
    let (status, code, _) = error_of(s.post(data.clone(), Some(&forged), false).await).await;
    assert_eq!((status, code.as_str()), (401, "unauthorized"));
    // Alice's signature of another request (a read of her listing).
    let read = s.auth_for(
        &alice.key(),
        &here,
        Authorization::listing_scope(&alice.account()),
    );
    let (status, code, message) = error_of(s.post(data.clone(), Some(&read), false).await).await;
    assert_eq!((status, code.as_str()), (401, "unauthorized"));
    // (The header carries no scope: the route's is what is verified.)
    assert!(message.contains("does not verify"), "{message}");

    // Nothing was stored or counted.
    assert_eq!(s.stored_files(), 0);
    assert!(!s.node.blobs().contains(&cid_of(&data).await).await.unwrap());
    assert_eq!(s.node.uploads().total_usage(), 0);

    // Signed properly, it is stored and counted against Alice.
    let resp = s
        .post(data.clone(), Some(&s.upload_auth(&alice)), false)
        .await;
    assert_eq!(resp.status().as_u16(), 201);
    assert!(s.node.blobs().contains(&cid_of(&data).await).await.unwrap());
    assert_eq!(s.node.uploads().usage(&alice.account()), 300);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_quota_is_refused_stores_nothing_and_others_still_upload() {
    let s = Served::start().await;
    let (alice, bob, carol) = (Person::new(), Person::new(), Person::new());
    let first = blob(600, 5);
    let resp = s
        .post(first.clone(), Some(&s.upload_auth(&alice)), false)
        .await;
    assert_eq!(resp.status().as_u16(), 201);
    let files = s.stored_files();

    // 600 + 600 > 1000: refused, declared (before any byte is read) or
    // streamed (as it crosses the quota).
    let second = blob(600, 7);
    for streamed in [false, true] {
        let resp = s
            .post(second.clone(), Some(&s.upload_auth(&alice)), streamed)
            .await;
        let (status, code, message) = error_of(resp).await;
        assert_eq!(
            (status, code.as_str()),
            (413, "quota_exceeded"),
            "{message}"
        );
        assert!(message.contains("register"), "{message}");
        assert!(!s
            .node
            .blobs()
            .contains(&cid_of(&second).await)
            .await
            .unwrap());
        assert_eq!(s.stored_files(), files, "streamed: {streamed}");
        assert_eq!(s.node.uploads().usage(&alice.account()), 600);
    }
    // The first upload is still there, whole.
    let kept = collect(
        NodeApi::get_blob(&*s.node, cid_of(&first).await)
            .await
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(kept, first);

    // Another account still uploads.
    let resp = s
        .post(second.clone(), Some(&s.upload_auth(&bob)), false)
        .await;
    assert_eq!(resp.status().as_u16(), 201);
    assert_eq!(s.node.uploads().usage(&bob.account()), 600);

    // A third account would take the node past its cap: 507.
    let third = blob(600, 11);
    let (status, code, message) = error_of(
        s.post(third.clone(), Some(&s.upload_auth(&carol)), true)
            .await,
    )
    .await;
    assert_eq!(
        (status, code.as_str()),
        (507, "quota_exceeded"),
        "{message}"
    );
    assert!(!s
        .node
        .blobs()
        .contains(&cid_of(&third).await)
        .await
        .unwrap());
    assert_eq!(s.node.uploads().total_usage(), 1_200);

    // Uploading the same blob again is not counted twice.
    let small = blob(100, 13);
    for _ in 0..2 {
        let resp = s
            .post(small.clone(), Some(&s.upload_auth(&alice)), false)
            .await;
        assert_eq!(resp.status().as_u16(), 201);
    }
    assert_eq!(s.node.uploads().usage(&alice.account()), 700);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registering_frees_the_quota() {
    let dir = tempfile::tempdir().unwrap();
    let node = open(dir.path(), Arc::new(ManualClock::new(START))).await;
    let alice = Person::new();
    // The client uploads (signed) and registers: nothing stays counted.
    let put = alice
        .client(&node)
        .put(byte_stream_of(blob(700, 3)), "text/plain")
        .await
        .unwrap();
    assert_eq!(node.uploads().usage(&alice.account()), 0);
    assert!(node.uploads().is_referenced(&put.cid).unwrap());
    // So a whole quota's worth more fits.
    let more = blob(QUOTA as usize, 17);
    let cid = upload(&node, &alice, &more).await.unwrap();
    assert_eq!(node.uploads().usage(&alice.account()), QUOTA);
    // And the record reads back.
    assert!(node.blobs().contains(&put.cid).await.unwrap());
    assert!(node.blobs().contains(&cid).await.unwrap());
    node.shutdown().await.unwrap();
}

/// Waits up to 10 s for `cid` to be gone from `node`'s blob store.
async fn swept(node: &Dev, cid: &ContentId) -> bool {
    for _ in 0..100 {
        if !node.blobs().contains(cid).await.unwrap() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_deletes_unregistered_blobs_after_the_grace_period_and_keeps_registered_ones() {
    // (The only test here that installs a recorder; the others' sweeps
    // may count too, so the counters are checked as lower bounds.)
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(START));
    let node = open(dir.path(), clock.clone()).await;
    let alice = Person::new();
    let record = blob(500, 3);
    let put = alice
        .client(&node)
        .put(byte_stream_of(record.clone()), "text/plain")
        .await
        .unwrap();
    let stray = blob(400, 19);
    let stray_cid = upload(&node, &alice, &stray).await.unwrap();

    // Within the grace period nothing goes.
    clock.advance(GRACE.as_millis() as u64 / 2);
    assert_eq!(node.sweep_uploads().await.unwrap(), 0);
    assert!(node.blobs().contains(&stray_cid).await.unwrap());

    // After it, the unregistered blob goes (the node's own sweep, on its
    // clock), the registered one stays and reads back.
    clock.advance(GRACE.as_millis() as u64);
    assert!(
        swept(&node, &stray_cid).await,
        "the sweep did not delete the unregistered blob"
    );
    assert_eq!(node.uploads().usage(&alice.account()), 0);
    assert!(node.uploads().get(&stray_cid).unwrap().is_none());
    let text = metrics.render();
    let value = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} in {text}"))
            .parse()
            .unwrap()
    };
    assert!(value("rr_uploads_swept_total") >= 1, "{text}");
    assert!(value("rr_uploads_swept_bytes_total") >= 400, "{text}");
    assert!(text.contains("rr_unreferenced_upload_bytes "), "{text}");
    let bob = Person::new();
    let grant = alice
        .client(&node)
        .grant(
            put.record_id,
            &bob.client(&node).card(),
            options("treatment", None),
        )
        .await
        .unwrap();
    assert_eq!(
        retrieve_all(&bob.client(&node), grant, "treatment")
            .await
            .unwrap(),
        record
    );

    // Even if the index lost track of the registration (its file deleted),
    // a blob a committed record names is never swept: the sweep reads the
    // ledger first.
    node.shutdown().await.unwrap();
    drop(node);
    std::fs::remove_file(dir.path().join("uploads.redb")).unwrap();
    let node = open(dir.path(), clock.clone()).await;
    let ciphertext = collect(NodeApi::get_blob(&*node, put.cid).await.unwrap())
        .await
        .unwrap();
    assert_eq!(upload(&node, &alice, &ciphertext).await.unwrap(), put.cid);
    clock.advance(2 * GRACE.as_millis() as u64);
    node.sweep_uploads().await.unwrap();
    assert!(node.blobs().contains(&put.cid).await.unwrap());
    assert!(node.uploads().is_referenced(&put.cid).unwrap());
    assert_eq!(
        retrieve_all(&bob.client(&node), grant, "treatment")
            .await
            .unwrap(),
        record
    );
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_index_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(START));
    let node = open(dir.path(), clock.clone()).await;
    let alice = Person::new();
    let first = blob(600, 23);
    let cid = upload(&node, &alice, &first).await.unwrap();
    node.shutdown().await.unwrap();
    drop(node);

    let node = open(dir.path(), clock.clone()).await;
    assert_eq!(node.uploads().usage(&alice.account()), 600);
    let second = blob(600, 29);
    let err = upload(&node, &alice, &second).await.unwrap_err();
    assert!(
        matches!(err, NodeError::QuotaExceeded { global: false, .. }),
        "{err:?}"
    );
    assert!(!node.blobs().contains(&cid_of(&second).await).await.unwrap());
    assert_eq!(
        collect(NodeApi::get_blob(&*node, cid).await.unwrap())
            .await
            .unwrap(),
        first
    );
    // Its upload time survived too: swept after the grace period.
    clock.advance(GRACE.as_millis() as u64 + 1);
    assert_eq!(node.sweep_uploads().await.unwrap(), 1);
    assert!(!node.blobs().contains(&cid).await.unwrap());
    assert_eq!(node.uploads().usage(&alice.account()), 0);
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_cluster_replica_frees_the_quota_once_the_registration_commits() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = rr_node::LocalCluster::start(dir.path(), 4).await.unwrap();
    let alice = Person::new();
    let client = cluster.client(alice.identity());
    let put = client
        .put(byte_stream_of(blob(5_000, 31)), "text/plain")
        .await
        .unwrap();
    // Whichever replica ordered it, every replica reads the registration
    // from the ledger: the blob is referenced and Alice's quota is free.
    let mut settled = false;
    for _ in 0..100 {
        settled = cluster.running().iter().all(|(_, r)| {
            r.uploads().is_referenced(&put.cid).unwrap() && r.uploads().usage(&alice.account()) == 0
        });
        if settled {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(settled, "a replica still counts the registered blob");
    // And an unregistered upload counts on every replica that stored it.
    let stray = blob(3_000, 37);
    let replicas = cluster.client_replicas().unwrap();
    let auth = Authorization::sign(
        &alice.key(),
        &cluster.replica_set().unwrap().digest(),
        Authorization::upload_scope(),
    );
    let cid = replicas
        .put_blob(byte_stream_of(stray.clone()), auth)
        .await
        .unwrap();
    let counted = cluster
        .running()
        .iter()
        .filter(|(_, r)| r.uploads().get(&cid).unwrap().is_some())
        .count();
    assert!(counted >= 3, "{counted} replicas counted the upload");
    cluster.shutdown().await.unwrap();
}
