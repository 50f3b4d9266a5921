//! Retrieve throughput: the raw umbral-pre re-encryption, the node in process,
//! and the node over HTTP on 127.0.0.1, at the same concurrency, in one run.
//!
//! A node-side retrieve verifies the call's signature, orders it (a durable,
//! batched ledger commit with its audit entry), loads the replica's key
//! fragment and re-encrypts. Clients sign their calls before the clock starts,
//! so what is measured is the node's work (and, over HTTP, the transport).
//!
//! ```text
//! cargo bench -p rr-node --bench retrieve
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rr_core::{byte_stream_of, Call, GrantId, Purpose, Retrieve, SignedTransaction};
use rr_node::http::{self, HttpClient, ServerConfig};
use rr_node::{Client, DevConfig, GrantOptions, Identity, Node, NodeApi};
use rr_pre::Umbral;

const CONCURRENCY: usize = 64;

async fn run_all<F, Fut>(items: Vec<SignedTransaction>, f: F) -> Duration
where
    F: Fn(SignedTransaction) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for tx in items {
        if set.len() >= CONCURRENCY {
            set.join_next().await.unwrap().unwrap();
        }
        set.spawn(f(tx));
    }
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
    start.elapsed()
}

fn sign_many(bob: &Identity<Umbral>, grant: GrantId, n: u64) -> Vec<SignedTransaction> {
    (0..n)
        .map(|_| {
            bob.sign(Call::Retrieve(Retrieve {
                grant,
                purpose: Purpose::new("treatment").unwrap(),
            }))
        })
        .collect()
}

fn retrieve(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let node = rt
        .block_on(Node::open_dev(DevConfig::new(dir.path())))
        .unwrap();
    let url = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let router = http::router(node.clone(), ServerConfig::default());
        tokio::spawn(http::serve(listener, router, std::future::pending()));
        url
    });
    let alice = Client::in_process(&node, Identity::generate(&Umbral));
    let bob = Identity::generate(&Umbral);
    let bob_card = bob.card(&Umbral);
    let grant = rt.block_on(async {
        let put = alice
            .put(byte_stream_of(vec![7u8; 1024]), "text/plain")
            .await
            .unwrap();
        alice
            .grant(
                put.record_id,
                &bob_card,
                GrantOptions {
                    purpose: Purpose::new("treatment").unwrap(),
                    expires_at: None,
                    threshold: None,
                },
            )
            .await
            .unwrap()
    });
    let bob = Arc::new(bob);
    let http_api: Arc<dyn NodeApi> = Arc::new(HttpClient::new(&url).unwrap());

    // The raw call the replica makes: re-encrypt one capsule with one key fragment.
    let delegating = umbral_pre::SecretKey::random();
    let signer = umbral_pre::Signer::new(umbral_pre::SecretKey::random());
    let receiving = umbral_pre::SecretKey::random().public_key();
    let (capsule, _) = umbral_pre::encrypt(&delegating.public_key(), b"key").unwrap();
    let capsule = Arc::new(capsule);
    let kfrag = Arc::new(
        umbral_pre::generate_kfrags(&delegating, &receiving, &signer, 1, 1, true, true)
            .into_vec()
            .remove(0),
    );

    let mut group = c.benchmark_group("retrieve");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.bench_function(BenchmarkId::new("raw-reencrypt", CONCURRENCY), |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (kfrag, bob, capsule) = (kfrag.clone(), bob.clone(), capsule.clone());
            async move {
                let dummies =
                    vec![bob.sign(Call::Revoke(rr_core::Revoke { grant })); iters as usize];
                run_all(dummies, move |_| {
                    let (kfrag, capsule) = (kfrag.clone(), capsule.clone());
                    async move {
                        tokio::task::spawn_blocking(move || {
                            umbral_pre::reencrypt(&capsule, (*kfrag).clone())
                        })
                        .await
                        .unwrap();
                    }
                })
                .await
            }
        })
    });
    group.bench_function(BenchmarkId::new("node-in-process", CONCURRENCY), |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (node, bob) = (node.clone(), bob.clone());
            async move {
                let txs = sign_many(&bob, grant, iters);
                run_all(txs, move |tx| {
                    let node = node.clone();
                    async move {
                        node.retrieve(tx).await.unwrap();
                    }
                })
                .await
            }
        })
    });
    group.bench_function(BenchmarkId::new("node-over-http", CONCURRENCY), |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (api, bob) = (http_api.clone(), bob.clone());
            async move {
                let txs = sign_many(&bob, grant, iters);
                run_all(txs, move |tx| {
                    let api = api.clone();
                    async move {
                        api.retrieve(tx).await.unwrap();
                    }
                })
                .await
            }
        })
    });
    group.finish();
}

criterion_group!(benches, retrieve);
criterion_main!(benches);
