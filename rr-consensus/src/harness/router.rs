//! A fault-injecting in-process network.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rr_core::ReplicaId;
use tokio::sync::mpsc;

use crate::transport::Network;

/// Link faults applied to every message.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Faults {
    /// Probability a message is lost.
    pub drop: f64,
    /// Probability a message is delivered twice.
    pub duplicate: f64,
    /// Each copy is delayed uniformly up to this (so messages reorder).
    pub max_delay: Duration,
}

/// Rewrites a message on the link `from -> to`: the messages to deliver
/// instead (empty to drop it). Models a Byzantine sender.
pub type Interceptor = Arc<dyn Fn(ReplicaId, ReplicaId, Bytes) -> Vec<Bytes> + Send + Sync>;

struct State {
    rng: StdRng,
    faults: Faults,
    down: BTreeSet<ReplicaId>,
    cut: BTreeSet<(ReplicaId, ReplicaId)>,
    interceptor: Option<Interceptor>,
    inboxes: Vec<Option<mpsc::Sender<(ReplicaId, Bytes)>>>,
}

/// Connects the replicas of an in-process cluster. All randomness comes from
/// one seeded generator.
pub struct Router {
    state: Mutex<State>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router").finish_non_exhaustive()
    }
}

/// Messages a replica's inbox holds before the router drops more.
const INBOX: usize = 8192;

impl Router {
    /// A router for `n` replicas, its randomness seeded with `seed`.
    pub fn new(n: usize, seed: u64) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                rng: StdRng::seed_from_u64(seed),
                faults: Faults::default(),
                down: BTreeSet::new(),
                cut: BTreeSet::new(),
                interceptor: None,
                inboxes: (0..n).map(|_| None).collect(),
            }),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("router lock")
    }

    /// The network endpoint of replica `id` (a new inbox: what was queued
    /// for an earlier endpoint is lost, as on a restart).
    pub fn endpoint(self: &Arc<Self>, id: ReplicaId) -> Arc<RouterEndpoint> {
        let (tx, rx) = mpsc::channel(INBOX);
        self.state().inboxes[id.0 as usize] = Some(tx);
        Arc::new(RouterEndpoint {
            me: id,
            router: self.clone(),
            rx: tokio::sync::Mutex::new(rx),
        })
    }

    /// Applies `faults` to every message from now on.
    pub fn set_faults(&self, faults: Faults) {
        self.state().faults = faults;
    }

    /// Disconnects replica `id` from everyone (a crash, as the others see it).
    pub fn isolate(&self, id: ReplicaId) {
        self.state().down.insert(id);
    }

    /// Reconnects replica `id`.
    pub fn reconnect(&self, id: ReplicaId) {
        self.state().down.remove(&id);
    }

    /// Cuts every link between replicas of different groups.
    pub fn partition(&self, groups: &[&[u16]]) {
        let mut s = self.state();
        for (i, a) in groups.iter().enumerate() {
            for (j, b) in groups.iter().enumerate() {
                if i != j {
                    for x in a.iter() {
                        for y in b.iter() {
                            s.cut.insert((ReplicaId(*x), ReplicaId(*y)));
                        }
                    }
                }
            }
        }
    }

    /// Removes every partition and link fault, and reconnects isolated replicas.
    pub fn heal(&self) {
        let mut s = self.state();
        s.cut.clear();
        s.down.clear();
        s.faults = Faults::default();
    }

    /// Rewrites messages with `f` (see [`Interceptor`]); `None` stops.
    pub fn set_interceptor(&self, f: Option<Interceptor>) {
        self.state().interceptor = f;
    }

    /// Injects raw bytes as if `from` sent them to `to` (a Byzantine replica's
    /// garbage), bypassing faults.
    pub fn inject(&self, from: ReplicaId, to: ReplicaId, bytes: Bytes) {
        if let Some(Some(inbox)) = self.state().inboxes.get(to.0 as usize) {
            let _ = inbox.try_send((from, bytes));
        }
    }

    fn deliver(&self, from: ReplicaId, to: ReplicaId, bytes: Bytes) {
        let mut s = self.state();
        if s.down.contains(&from) || s.down.contains(&to) || s.cut.contains(&(from, to)) {
            return;
        }
        let Some(Some(inbox)) = s.inboxes.get(to.0 as usize).cloned() else {
            return;
        };
        let msgs = match s.interceptor.clone() {
            Some(f) => f(from, to, bytes),
            None => vec![bytes],
        };
        let faults = s.faults;
        for m in msgs {
            if faults.drop > 0.0 && s.rng.gen_bool(faults.drop.min(1.0)) {
                continue;
            }
            let copies = if faults.duplicate > 0.0 && s.rng.gen_bool(faults.duplicate.min(1.0)) {
                2
            } else {
                1
            };
            for _ in 0..copies {
                let delay = if faults.max_delay.is_zero() {
                    Duration::ZERO
                } else {
                    Duration::from_micros(s.rng.gen_range(0..=faults.max_delay.as_micros() as u64))
                };
                if delay.is_zero() {
                    let _ = inbox.try_send((from, m.clone()));
                } else {
                    let inbox = inbox.clone();
                    let m = m.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(delay).await;
                        let _ = inbox.try_send((from, m));
                    });
                }
            }
        }
    }
}

/// One replica's connection to the [`Router`].
pub struct RouterEndpoint {
    me: ReplicaId,
    router: Arc<Router>,
    rx: tokio::sync::Mutex<mpsc::Receiver<(ReplicaId, Bytes)>>,
}

impl std::fmt::Debug for RouterEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouterEndpoint")
            .field("me", &self.me)
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl Network for RouterEndpoint {
    async fn send(&self, to: ReplicaId, message: Bytes) {
        self.router.deliver(self.me, to, message);
    }

    async fn recv(&self) -> Option<(ReplicaId, Bytes)> {
        self.rx.lock().await.recv().await
    }
}
