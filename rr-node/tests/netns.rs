//! Issue 13, tests across real hosts: four `rr-node run` processes, each in a
//! Linux network namespace of its own with its own address (so its own TCP
//! stack, as on separate hosts), driven over the network by the real client
//! (`Replicas::from_cluster_file` and `Client`) from the test's namespace.
//! Each phase stores a record, grants it, retrieves and decrypts it, and
//! checks that the certified height moved on:
//!
//! | phase | the network |
//! | --- | --- |
//! | baseline | clean links |
//! | partition | the primary's link unplugged (every frame to or from it dropped, as `netem loss 100%`): the other three order on (a view change) |
//! | healed | plugged back in: it catches up to the cluster's height, and ordering goes on |
//! | delay | 50 ms ± 20 ms on every replica's link |
//! | loss | 2% of the frames on every replica's link lost |
//!
//! It runs as root (or with `RR_NETNS=1`) and fails if it cannot make the
//! namespaces; otherwise it says it was skipped. `netns_support` says how the
//! links are made (a switch in the test process: netem is not in every
//! kernel). On failure the end of every replica's log is printed.
#![cfg(all(target_os = "linux", target_env = "gnu"))]

mod cli_support;
mod netns_support;

use std::time::{Duration, Instant};

use cli_support::sample;
use netns_support::{guard, note, Cluster, Link};
use rr_core::{byte_stream_of, Purpose};
use rr_node::{collect, Client, GrantOptions, Identity};
use rr_pre::Umbral;

/// Bytes each round stores and reads back.
const RECORD: usize = 256 << 10;
/// How long one request to one replica may take before the client tries
/// another (a cut-off replica costs this much at most per request).
const DEADLINE: Duration = Duration::from_secs(3);

#[test]
fn replicas_on_separate_hosts_order_through_partition_delay_and_loss() {
    if let Err(why) = netns_support::should_run() {
        println!("netns: skipped: {why}");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(phases());
}

struct People {
    alice: Client<Umbral>,
    bob: Client<Umbral>,
    seed: std::sync::atomic::AtomicU64,
}

async fn phases() {
    let started = Instant::now();
    note("starting");
    let cluster = guard("starting the cluster", 180, Cluster::start()).await;
    let people = People {
        alice: cluster.client(Identity::generate(&Umbral), DEADLINE),
        bob: cluster.client(Identity::generate(&Umbral), DEADLINE),
        seed: 1.into(),
    };

    // Baseline.
    round(&cluster, &people, "baseline").await;
    report(&cluster).await;

    // The primary's link unplugged: the other three replace it and go on.
    let victim = cluster.primary().await;
    cluster.net.set_link(victim, Link::CUT);
    note(format!("replica {victim} (the primary) cut off"));
    round(&cluster, &people, &format!("replica {victim} cut off, 1st")).await;
    round(&cluster, &people, &format!("replica {victim} cut off, 2nd")).await;
    let cluster_height = head(&people).await;
    match cluster.height_of(victim).await {
        Ok(h) => panic!("replica {victim} is cut off but answered (height {h})"),
        Err(e) => note(format!(
            "replica {victim} cannot be reached, as intended: {e}"
        )),
    }
    report(&cluster).await;

    // Plugged back in: it catches up, and ordering goes on.
    cluster.net.set_link(victim, Link::CLEAN);
    let healed = Instant::now();
    note(format!(
        "replica {victim} plugged back in; the cluster is at height {cluster_height}"
    ));
    let caught_up = catch_up(&cluster, victim, cluster_height).await;
    note(format!(
        "replica {victim} reached height {caught_up} (≥ {cluster_height}) {:.1} s after the link came back",
        healed.elapsed().as_secs_f64()
    ));
    let after = round(&cluster, &people, "healed").await;
    let caught_up = catch_up(&cluster, victim, after).await;
    note(format!("replica {victim} follows: height {caught_up}"));
    report(&cluster).await;

    // 50 ms ± 20 ms on every replica's link.
    cluster.net.set_replica_links(Link::delayed(
        Duration::from_millis(50),
        Duration::from_millis(20),
    ));
    note("every replica link: 50 ms ± 20 ms");
    round(&cluster, &people, "delay, 1st").await;
    round(&cluster, &people, "delay, 2nd").await;
    cluster.net.set_replica_links(Link::CLEAN);
    report(&cluster).await;

    // 2% loss on every replica's link.
    let (forwarded_before, lost_before, _) = cluster.net.stats();
    cluster.net.set_replica_links(Link::lossy(0.02));
    note("every replica link: 2% loss");
    for k in 1..=5 {
        round(&cluster, &people, &format!("loss, round {k}")).await;
    }
    cluster.net.set_replica_links(Link::CLEAN);
    let (forwarded, lost, _) = cluster.net.stats();
    note(format!(
        "the lossy links lost {} frames, of {} the switch saw in this phase (the client's, never lost, included)",
        lost - lost_before,
        (lost - lost_before) + (forwarded - forwarded_before)
    ));
    report(&cluster).await;

    note(format!(
        "every phase passed in {:.1} s",
        started.elapsed().as_secs_f64()
    ));
}

/// Alice stores a record and grants it to Bob, Bob retrieves and decrypts
/// it; the bytes match and the certified height moved on. Returns the
/// height after.
async fn round(cluster: &Cluster, people: &People, label: &str) -> u64 {
    let seed = people
        .seed
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let data = sample(RECORD, seed);
    let what = |step: &str| format!("{label}: {step}");
    let mut steps = Steps::default();
    let before = steps.time("head", head(people)).await;
    let put = steps
        .time(
            "put",
            guard(
                &what("put"),
                120,
                people
                    .alice
                    .put(byte_stream_of(data.clone()), "application/octet-stream"),
            ),
        )
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", what("put")));
    let treatment = Purpose::new("treatment").unwrap();
    let grant = steps
        .time(
            "grant",
            guard(
                &what("grant"),
                120,
                people.alice.grant(
                    put.record_id,
                    &people.bob.card(),
                    GrantOptions {
                        purpose: treatment.clone(),
                        expires_at: None,
                        threshold: None,
                    },
                ),
            ),
        )
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", what("grant")));
    let plain = steps
        .time(
            "retrieve",
            guard(&what("retrieve"), 120, async {
                collect(people.bob.retrieve(grant, treatment).await?).await
            }),
        )
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", what("retrieve")));
    assert!(
        plain == data,
        "{label}: the decrypted record differs from what was stored ({} bytes, {} expected)",
        plain.len(),
        data.len()
    );
    let after = steps.time("head", head(people)).await;
    assert!(
        put.certified_at > before && after > put.certified_at,
        "{label}: the certified height did not move on: {before} before, put certified at {}, {after} after",
        put.certified_at
    );
    note(format!(
        "{label}: put + grant + retrieve of {} KiB, certified height {before} -> {after}, in {}",
        RECORD >> 10,
        steps
    ));
    for e in cluster.new_log_events() {
        println!("    {e}");
    }
    after
}

/// How long each step of a round took.
#[derive(Default)]
struct Steps(Vec<(&'static str, Duration)>);

impl Steps {
    async fn time<T>(
        &mut self,
        name: &'static str,
        fut: impl std::future::Future<Output = T>,
    ) -> T {
        let t = Instant::now();
        let out = fut.await;
        self.0.push((name, t.elapsed()));
        out
    }
}

impl std::fmt::Display for Steps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let total: Duration = self.0.iter().map(|(_, d)| *d).sum();
        write!(f, "{:.2} s (", total.as_secs_f64())?;
        for (k, (name, d)) in self.0.iter().enumerate() {
            let sep = if k == 0 { "" } else { ", " };
            write!(f, "{sep}{name} {:.2}", d.as_secs_f64())?;
        }
        write!(f, ")")
    }
}

/// The cluster's certified height, as Alice's client sees it.
async fn head(people: &People) -> u64 {
    guard(
        "reading the certified head",
        60,
        people.alice.replicas().head(),
    )
    .await
    .unwrap_or_else(|e| panic!("the cluster's certified head: {e}"))
    .height()
}

/// Waits until replica `i`, asked on its own, shows a certified height of at
/// least `height`; returns the height it showed.
async fn catch_up(cluster: &Cluster, i: usize, height: u64) -> u64 {
    guard(
        &format!("replica {i} catching up to height {height}"),
        90,
        async {
            loop {
                if let Ok(h) = cluster.height_of(i).await {
                    if h >= height {
                        return h;
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        },
    )
    .await
}

/// Prints each replica's height and view, and what the replicas logged about
/// views since the last round.
async fn report(cluster: &Cluster) {
    note(format!("replicas: {}", cluster.views().await));
    for e in cluster.new_log_events() {
        println!("    {e}");
    }
}
