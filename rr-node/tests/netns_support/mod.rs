//! Replicas on separate network hosts: each `rr-node run` process in a Linux
//! network namespace of its own, with its own address, linked to the test
//! process (the client, in the root namespace) by a switch whose links can be
//! cut, delayed and made lossy.
//!
//! Why a switch in the test process and not veth pairs on a kernel bridge
//! with `tc netem`: netem (`CONFIG_NET_SCH_NETEM`) is not built into every
//! kernel (the VM this test was written on lacks it, and `act_gact` and the
//! nft/iptables tools too), and nothing else in the kernel delays packets.
//! So each namespace gets a TAP device instead of a veth, whose other end is
//! a file the test process holds (`/dev/net/tun`, present in any kernel with
//! `CONFIG_TUN`). The switch reads every Ethernet frame a namespace sends,
//! learns which port each MAC address is on, and forwards the frame to its
//! port: at once on a clean link; after the sender's link delay (uniform
//! jitter, so frames reorder, as netem's do); never if the sender's link
//! loses it (each frame with the link's probability) or either end's link is
//! cut. That is netem on the namespace end of each link; the client's link,
//! in the root namespace, is never impaired.
//!
//! Names carry the test's pid (`rrnet-PID-I` namespaces, `rrtPIDrI` and
//! `rrtPIDc` interfaces) and the subnet 10.77.X.0/24 is one no interface of
//! the root namespace uses, so runs side by side never collide. Everything is
//! removed when [`Net`] is dropped, panics included; the TAP devices go with
//! the test process in any case, and namespaces a killed run left behind are
//! removed (their processes killed) by the next run.
#![allow(dead_code)]

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand_core::{OsRng, RngCore};
use rr_node::http::HttpClient;
use rr_node::{Client, ClusterFile, Identity, NodeApi, Replicas};
use rr_pre::Umbral;
use tokio::io::unix::AsyncFd;

use crate::cli_support::Localnet;

/// HTTP port of every replica (each has an address of its own).
const HTTP_PORT: u16 = 7700;
/// Replica-to-replica port of every replica.
const P2P_PORT: u16 = 7800;

/// Whether this test runs here: as root, or with `RR_NETNS=1`. `Err` says
/// why it is skipped.
pub fn should_run() -> Result<(), String> {
    if std::env::var("RR_NETNS").is_ok_and(|v| v == "1") {
        return Ok(());
    }
    if rustix::process::geteuid().is_root() {
        return Ok(());
    }
    Err("it needs root (network namespaces, TAP devices); run it as root or set RR_NETNS=1".into())
}

/// Prints one progress line, with the time since the test started.
pub fn note(msg: impl std::fmt::Display) {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let t = START.get_or_init(Instant::now).elapsed();
    println!("[netns {:>6.1}s] {msg}", t.as_secs_f64());
}

/// Runs `ip ARGS`; its stdout, or what failed.
fn ip(args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run `ip` (install iproute2): {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`ip {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// What a link does to the frames its namespace sends (and whether it
/// carries any at all).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Link {
    /// Every frame waits this long…
    pub delay: Duration,
    /// …give or take up to this much (uniformly).
    pub jitter: Duration,
    /// Probability that a frame is lost.
    pub loss: f64,
    /// Unplugged: no frame in or out.
    pub cut: bool,
}

impl Link {
    /// A clean link.
    pub const CLEAN: Link = Link {
        delay: Duration::ZERO,
        jitter: Duration::ZERO,
        loss: 0.0,
        cut: false,
    };

    /// An unplugged link.
    pub const CUT: Link = Link {
        cut: true,
        ..Link::CLEAN
    };

    /// `delay` ± `jitter`, as `netem delay DELAY JITTER`.
    pub fn delayed(delay: Duration, jitter: Duration) -> Self {
        Link {
            delay,
            jitter,
            ..Link::CLEAN
        }
    }

    /// Loses each frame with probability `p`, as `netem loss`.
    pub fn lossy(p: f64) -> Self {
        Link {
            loss: p,
            ..Link::CLEAN
        }
    }
}

/// Frames the switch has seen.
#[derive(Default, Debug)]
pub struct Stats {
    /// Frames sent on (or queued to be, when delayed).
    pub forwarded: AtomicU64,
    /// Lost to a lossy link.
    pub lost: AtomicU64,
    /// Dropped at a cut link.
    pub cut: AtomicU64,
}

impl Stats {
    fn snapshot(&self) -> (u64, u64, u64) {
        (
            self.forwarded.load(Ordering::Relaxed),
            self.lost.load(Ordering::Relaxed),
            self.cut.load(Ordering::Relaxed),
        )
    }
}

/// A small fast PRNG for loss and jitter (xorshift64*).
struct Rng(u64);

impl Rng {
    fn new() -> Self {
        Self(OsRng.next_u64() | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Opens a new TAP device `name` (no packet-information header, non-blocking).
/// It exists while the file is open.
#[allow(unsafe_code)]
fn open_tap(name: &str) -> std::io::Result<File> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;

    /// `struct ifreq`: a name, then a 24-byte union whose first member we set.
    #[repr(C)]
    struct IfReq {
        name: [u8; libc::IFNAMSIZ],
        flags: libc::c_short,
        _rest: [u8; 22],
    }
    assert!(
        name.len() < libc::IFNAMSIZ,
        "interface name {name} too long"
    );
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open("/dev/net/tun")?;
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        flags: (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short,
        _rest: [0; 22],
    };
    req.name[..name.len()].copy_from_slice(name.as_bytes());
    // SAFETY: TUNSETIFF reads (and writes back) one `struct ifreq` (40 bytes
    // on Linux), which `req` is, and which outlives the call; the descriptor
    // is open for the whole call.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut req as *mut IfReq) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(file)
}

/// What the switch's ports share.
struct Shared {
    links: Mutex<Vec<Link>>,
    macs: Mutex<HashMap<[u8; 6], usize>>,
    stats: Stats,
}

/// The switch: one thread with a runtime of its own (so nothing the test does
/// can stall the network), one task per port.
struct Switch {
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Switch {
    #[allow(unsafe_code)]
    fn start(taps: Vec<File>) -> Result<Self, String> {
        let shared = Arc::new(Shared {
            links: Mutex::new(vec![Link::CLEAN; taps.len()]),
            macs: Mutex::default(),
            stats: Stats::default(),
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready) = std::sync::mpsc::channel::<Result<(), String>>();
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("netns-switch".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("switch runtime: {e}")));
                        return;
                    }
                };
                rt.block_on(async move {
                    let mut ports = Vec::new();
                    for tap in taps {
                        // SAFETY: the `File` owns its descriptor, which stays
                        // open and the same until the `AsyncFd` drops it.
                        match unsafe { AsyncFd::register(tap) } {
                            Ok(p) => ports.push(p),
                            Err(e) => {
                                let _ = ready_tx.send(Err(format!("switch: a TAP device: {e}")));
                                return;
                            }
                        }
                    }
                    let ports = Arc::new(ports);
                    for i in 0..ports.len() {
                        tokio::spawn(port(i, ports.clone(), s.clone()));
                    }
                    let _ = ready_tx.send(Ok(()));
                    let _ = stopped.await;
                });
                // Dropping the runtime ends the port tasks and closes the
                // TAP files, which removes the devices.
            })
            .map_err(|e| format!("cannot start the switch thread: {e}"))?;
        ready
            .recv()
            .map_err(|_| "the switch thread died while starting".to_string())??;
        Ok(Self {
            shared,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    fn set(&self, port: usize, link: Link) {
        self.shared.links.lock().unwrap()[port] = link;
    }
}

impl Drop for Switch {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Writes one frame to a port; a full queue or a port that is down loses it,
/// as a wire would.
fn send(port: &AsyncFd<File>, frame: &[u8]) {
    let _ = port.get_ref().write(frame);
}

/// Port `i`: every frame its namespace sends, forwarded.
async fn port(i: usize, ports: Arc<Vec<AsyncFd<File>>>, shared: Arc<Shared>) {
    let mut rng = Rng::new();
    let mut buf = vec![0u8; 65536];
    loop {
        let Ok(mut ready) = ports[i].readable().await else {
            return;
        };
        let n = match ready.try_io(|tap| tap.get_ref().read(&mut buf)) {
            Ok(Ok(n)) => n,
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Ok(Err(e)) => {
                eprintln!("netns switch: port {i} failed: {e}");
                return;
            }
            Err(_would_block) => continue,
        };
        let frame = &buf[..n];
        if frame.len() < 14 {
            continue;
        }
        let links = shared.links.lock().unwrap().clone();
        let link = links[i];
        if link.cut {
            shared.stats.cut.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        if link.loss > 0.0 && rng.unit() < link.loss {
            shared.stats.lost.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let dst: [u8; 6] = frame[0..6].try_into().unwrap();
        let src: [u8; 6] = frame[6..12].try_into().unwrap();
        let known = {
            let mut macs = shared.macs.lock().unwrap();
            if src[0] & 1 == 0 {
                macs.insert(src, i);
            }
            (dst[0] & 1 == 0).then(|| macs.get(&dst).copied()).flatten()
        };
        let mut targets: Vec<usize> = match known {
            Some(q) => vec![q],
            None => (0..ports.len()).collect(),
        };
        targets.retain(|&q| {
            let keep = q != i && !links[q].cut;
            if q != i && links[q].cut {
                shared.stats.cut.fetch_add(1, Ordering::Relaxed);
            }
            keep
        });
        if targets.is_empty() {
            continue;
        }
        shared.stats.forwarded.fetch_add(1, Ordering::Relaxed);
        let mut delay = link.delay;
        if !link.jitter.is_zero() {
            let j = link.jitter.as_micros() as u64;
            let offset = rng.next() % (2 * j + 1);
            delay = (delay + Duration::from_micros(offset)).saturating_sub(link.jitter);
        }
        if delay.is_zero() {
            for q in targets {
                send(&ports[q], frame);
            }
        } else {
            let at = tokio::time::Instant::now() + delay;
            let frame = frame.to_vec();
            let ports = ports.clone();
            tokio::spawn(async move {
                tokio::time::sleep_until(at).await;
                for q in targets {
                    send(&ports[q], &frame);
                }
            });
        }
    }
}

/// `n` network namespaces, one per replica, and the client's link in the
/// root namespace, all on one switch. Dropping it kills whatever still runs
/// in the namespaces and removes them.
pub struct Net {
    pid: u32,
    n: usize,
    subnet: u8,
    namespaces: Vec<String>,
    switch: Option<Switch>,
}

impl Net {
    /// Makes the namespaces, their links and the switch. `Err` says what
    /// could not be made (this test then fails: it never passes without
    /// having run).
    pub fn create(n: usize) -> Result<Self, String> {
        remove_stale();
        let pid = std::process::id();
        let mut net = Net {
            pid,
            n,
            subnet: free_subnet(pid)?,
            namespaces: Vec::new(),
            switch: None,
        };
        let mut taps = Vec::new();
        for i in 0..=n {
            let name = net.tap(i);
            let tap = open_tap(&name)
                .map_err(|e| format!("cannot create the TAP device {name} ({e})"))?;
            taps.push(tap);
        }
        for i in 0..n {
            let ns = net.netns(i);
            ip(&["netns", "add", &ns])?;
            net.namespaces.push(ns.clone());
            let tap = net.tap(i);
            let addr = format!("{}/24", net.replica_ip(i));
            ip(&["link", "set", &tap, "netns", &ns])?;
            ip(&["-n", &ns, "addr", "add", &addr, "dev", &tap])?;
            ip(&["-n", &ns, "link", "set", &tap, "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        let client = net.tap(n);
        ip(&[
            "addr",
            "add",
            &format!("{}/24", net.client_ip()),
            "dev",
            &client,
        ])?;
        ip(&["link", "set", &client, "up"])?;
        net.switch = Some(Switch::start(taps)?);
        Ok(net)
    }

    /// Replicas.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Replica `i`'s namespace.
    pub fn netns(&self, i: usize) -> String {
        format!("rrnet-{}-{i}", self.pid)
    }

    /// The TAP device of replica `i` (`i == n`: the client's).
    fn tap(&self, i: usize) -> String {
        if i == self.n {
            format!("rrt{}c", self.pid)
        } else {
            format!("rrt{}r{i}", self.pid)
        }
    }

    /// Replica `i`'s address.
    pub fn replica_ip(&self, i: usize) -> String {
        format!("10.77.{}.{}", self.subnet, 10 + i)
    }

    /// The client's address (the root namespace's end).
    pub fn client_ip(&self) -> String {
        format!("10.77.{}.1", self.subnet)
    }

    /// Sets replica `i`'s link.
    pub fn set_link(&self, i: usize, link: Link) {
        self.switch.as_ref().expect("switch running").set(i, link);
    }

    /// Sets every replica's link (the client's stays clean).
    pub fn set_replica_links(&self, link: Link) {
        for i in 0..self.n() {
            self.set_link(i, link);
        }
    }

    /// Frames forwarded, lost, and dropped at cut links, so far.
    pub fn stats(&self) -> (u64, u64, u64) {
        self.switch
            .as_ref()
            .map_or((0, 0, 0), |s| s.shared.stats.snapshot())
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in &self.namespaces {
            kill_all_in(ns);
        }
        // Closes the TAP files: the devices go.
        self.switch.take();
        for ns in &self.namespaces {
            if let Err(e) = ip(&["netns", "del", ns]) {
                eprintln!("netns: cleanup: {e}");
            }
        }
    }
}

/// Kills (SIGKILL) every process in namespace `ns`.
fn kill_all_in(ns: &str) {
    if let Ok(pids) = ip(&["netns", "pids", ns]) {
        for pid in pids.split_whitespace() {
            crate::cli_support::signal(pid.parse().unwrap_or(0), "KILL");
        }
    }
}

/// Removes the namespaces (and kills what runs in them) of earlier runs whose
/// test process is gone (killed before its clean-up ran).
fn remove_stale() {
    let Ok(list) = ip(&["netns", "list"]) else {
        return;
    };
    for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
        let Some(pid) = name
            .strip_prefix("rrnet-")
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            kill_all_in(name);
            let _ = ip(&["netns", "del", name]);
        }
    }
}

/// A 10.77.X.0/24 no address of the root namespace is in, starting from one
/// the pid picks.
fn free_subnet(pid: u32) -> Result<u8, String> {
    let used = ip(&["-4", "-o", "addr", "show"])?;
    let start = (pid % 200) as u8 + 20;
    (0..230u8)
        .map(|k| 20 + (start - 20 + k) % 230)
        .find(|x| !used.contains(&format!(" 10.77.{x}.")))
        .ok_or_else(|| "no free 10.77.X.0/24 subnet".to_string())
}

/// One `rr-node run` process in its namespace.
struct ReplicaProcess {
    child: Option<Child>,
    log: PathBuf,
    api: String,
}

/// A 4-replica cluster of `rr-node run` processes, one per namespace, made
/// by `rr-node localnet` and moved to the namespaces' addresses. Dropping it
/// kills the replicas and removes the network; if the test is failing, it
/// first prints the end of every replica's log.
pub struct Cluster {
    replicas: Vec<ReplicaProcess>,
    /// The network.
    pub net: Net,
    /// cluster.json, with the namespaces' addresses.
    pub cluster_file: PathBuf,
    /// Where each replica's log was when the test started (what it logged
    /// before is localnet's run on 127.0.0.1).
    log_offsets: Mutex<Vec<u64>>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Makes the network, then the cluster, and waits until every replica
    /// answers. Panics saying what failed.
    pub async fn start() -> Self {
        const N: usize = 4;
        let net = Net::create(N).unwrap_or_else(|e| {
            panic!(
                "this test could not make its network namespaces: {e}. It runs when run as root \
                 or with RR_NETNS=1, and then needs CAP_NET_ADMIN, iproute2 (`ip`) and \
                 /dev/net/tun; without root and RR_NETNS it is skipped"
            )
        });
        note(format!(
            "network up: {} namespaces on 10.77.{}.0/24 (client {}), one switch",
            N,
            net.subnet,
            net.client_ip()
        ));
        let dir = tempfile::tempdir().expect("temporary directory");
        let data = dir.path().join("net");
        // localnet makes the keys, keystores, node.toml files and
        // cluster.json (its replicas start once on 127.0.0.1 and stop).
        let status = Localnet::start(&data).stop();
        assert!(status.success(), "rr-node localnet exited with {status}");
        let cluster_file = data.join("cluster.json");
        let mut cluster = ClusterFile::read(&cluster_file).expect("localnet's cluster.json");
        assert_eq!(cluster.n, N);
        // The namespaces' addresses are not in localnet's certificates (made
        // for 127.0.0.1): the replicas serve plain HTTP on the test's own
        // network, with allow_plain_http.
        cluster.ca = None;
        for (i, m) in cluster.replicas.iter_mut().enumerate() {
            m.api = format!("http://{}:{HTTP_PORT}", net.replica_ip(i));
            m.p2p = format!("{}:{P2P_PORT}", net.replica_ip(i)).parse().unwrap();
            m.pid = None;
        }
        cluster.write(&cluster_file).expect("write cluster.json");
        let mut offsets = Vec::new();
        let mut cluster = Self {
            replicas: Vec::new(),
            net,
            cluster_file,
            log_offsets: Mutex::new(Vec::new()),
            _dir: dir,
        };
        let file = ClusterFile::read(&cluster.cluster_file).unwrap();
        for (i, m) in file.replicas.iter().enumerate() {
            rewrite_config(&m.config, &cluster.net, i);
            let mut log = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(&m.log)
                .expect("open the replica's log");
            writeln!(
                log,
                "=== netns test: replica {i} in namespace {} at {}",
                cluster.net.netns(i),
                cluster.net.replica_ip(i)
            )
            .unwrap();
            offsets.push(log.metadata().map(|m| m.len()).unwrap_or(0));
            let mut command = Command::new("ip");
            for (k, _) in std::env::vars() {
                if k.starts_with("RR_NODE_") {
                    command.env_remove(k);
                }
            }
            die_with_this_thread(&mut command);
            let child = command
                .args(["netns", "exec", &cluster.net.netns(i)])
                .arg(env!("CARGO_BIN_EXE_rr-node"))
                .arg("run")
                .arg("--config")
                .arg(&m.config)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("start `ip netns exec … rr-node run`");
            cluster.replicas.push(ReplicaProcess {
                child: Some(child),
                log: m.log.clone(),
                api: m.api.clone(),
            });
        }
        *cluster.log_offsets.lock().unwrap() = offsets;
        for i in 0..N {
            cluster.wait_ready(i).await;
        }
        note("every replica answers over the switch");
        cluster
    }

    async fn wait_ready(&mut self, i: usize) {
        let api = HttpClient::new(&self.replicas[i].api).unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(2), api.info()).await {
                return;
            }
            if let Some(status) = self.replicas[i]
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("replica {i} exited ({status}) while starting");
            }
            assert!(
                Instant::now() < deadline,
                "replica {i} did not answer on {} within 60 s",
                self.replicas[i].api
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Replicas.
    pub fn n(&self) -> usize {
        self.replicas.len()
    }

    /// A client of the cluster (through `cluster.json`, as `rr` would be)
    /// acting as `identity`, giving each replica request `deadline`.
    pub fn client(&self, identity: Identity<Umbral>, deadline: Duration) -> Client<Umbral> {
        let replicas = Replicas::from_cluster_file(&self.cluster_file)
            .expect("Replicas from cluster.json")
            .with_deadline(deadline);
        Client::new(replicas, Arc::new(Umbral), identity)
    }

    /// Replica `i`'s own newest certified height (`GET /v1/head`), asked of
    /// it alone.
    pub async fn height_of(&self, i: usize) -> Result<u64, String> {
        let api = HttpClient::new(&self.replicas[i].api).map_err(|e| e.to_string())?;
        match tokio::time::timeout(Duration::from_millis(1500), api.head()).await {
            Ok(Ok(cert)) => Ok(cert.header.height),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("no answer in 1.5 s".into()),
        }
    }

    /// Replica `i`'s `GET /v1/info`, as JSON (its `status` says its height,
    /// and, where the engine reports them, its view and view changes).
    pub async fn info_of(&self, i: usize) -> Option<serde_json::Value> {
        let url = format!("{}/v1/info", self.replicas[i].api);
        let get = async {
            reqwest::get(&url)
                .await
                .ok()?
                .json::<serde_json::Value>()
                .await
                .ok()
        };
        tokio::time::timeout(Duration::from_millis(1500), get)
            .await
            .ok()
            .flatten()
    }

    /// The primary, as the first replica that answers sees it (replica 0,
    /// the primary of view 0, when none says).
    pub async fn primary(&self) -> usize {
        for i in 0..self.n() {
            if let Some(info) = self.info_of(i).await {
                let status = &info["status"];
                if let Some(p) = status["primary"].as_u64() {
                    return p as usize;
                }
                if let Some(v) = status["view"].as_u64() {
                    return (v % self.n() as u64) as usize;
                }
                return 0;
            }
        }
        0
    }

    /// One line per replica: height, and view and view changes where the
    /// engine reports them.
    pub async fn views(&self) -> String {
        let mut parts = Vec::new();
        for i in 0..self.n() {
            match self.info_of(i).await {
                Some(info) => {
                    let s = &info["status"];
                    let mut part = format!("r{i}: height {}", s["height"]);
                    if !s["view"].is_null() {
                        part += &format!(" view {} changes {}", s["view"], s["view_changes"]);
                    }
                    parts.push(part);
                }
                None => parts.push(format!("r{i}: no answer")),
            }
        }
        parts.join("; ")
    }

    /// What replicas logged since the last call about views, state transfer
    /// and their links, warnings and errors (failed dials counted, not
    /// listed).
    pub fn new_log_events(&self) -> Vec<String> {
        let mut offsets = self.log_offsets.lock().unwrap();
        let mut out = Vec::new();
        for (i, r) in self.replicas.iter().enumerate() {
            let Ok(bytes) = std::fs::read(&r.log) else {
                continue;
            };
            let from = (offsets[i] as usize).min(bytes.len());
            let mut dials = 0;
            for line in String::from_utf8_lossy(&bytes[from..]).lines() {
                if line.contains("dial failed") || line.contains("dial timed out") {
                    dials += 1;
                } else if [
                    "view change",
                    "new view",
                    "entering view",
                    "suspecting",
                    "state transfer",
                    "link up",
                    "link down",
                    "link stalled",
                    "link closed",
                    " WARN ",
                    " ERROR ",
                ]
                .iter()
                .any(|w| line.contains(w))
                    && !line.contains("inbound link up")
                {
                    out.push(format!("r{i}: {}", line.trim()));
                }
            }
            if dials > 0 {
                out.push(format!(
                    "r{i}: ({dials} dials to peers failed or timed out)"
                ));
            }
            offsets[i] = bytes.len() as u64;
        }
        out
    }

    /// The last `lines` lines of replica `i`'s log.
    pub fn log_tail(&self, i: usize, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.replicas[i].log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n    ")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let (fwd, lost, cut) = self.net.stats();
            eprintln!(
                "\nnetns: the test failed; switch: {fwd} frames forwarded, {lost} lost, {cut} dropped at cut links"
            );
            for i in 0..self.replicas.len() {
                eprintln!(
                    "--- replica {i} ({}, namespace {}), end of {}:\n    {}",
                    self.replicas[i].api,
                    self.net.netns(i),
                    self.replicas[i].log.display(),
                    self.log_tail(i, 40)
                );
            }
        }
        for r in &mut self.replicas {
            if let Some(mut c) = r.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// Makes the process `command` starts get SIGKILL when the thread that
/// started it ends (the test thread: killed, say, by a CI timeout before
/// its clean-up ran). `ip netns exec` execs the replica in its place, and
/// the setting survives exec.
#[allow(unsafe_code)]
fn die_with_this_thread(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the child between fork and exec, and only
    // makes one system call (prctl), which is async-signal-safe; it touches
    // no memory of the parent and takes no lock.
    unsafe {
        command.pre_exec(|| {
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
                .map_err(std::io::Error::from)
        });
    }
}

/// Points replica `i`'s node.toml at the namespaces' addresses: its HTTP API
/// and p2p listen on its own address, and every peer is at its own.
fn rewrite_config(path: &Path, net: &Net, i: usize) {
    let text = std::fs::read_to_string(path).expect("read node.toml");
    let mut t: toml::Table = text.parse().expect("localnet's node.toml is TOML");
    assert_eq!(
        t["replica"].as_integer(),
        Some(i as i64),
        "{}",
        path.display()
    );
    // The replica links' events (up, down, stalled, dials) are at debug.
    t.insert("log".into(), "info,rr_consensus::tcp=debug".into());
    t.insert(
        "listen".into(),
        format!("{}:{HTTP_PORT}", net.replica_ip(i)).into(),
    );
    t.remove("tls");
    t.insert("allow_plain_http".into(), true.into());
    let peers = t
        .get_mut("peers")
        .and_then(|p| p.as_array_mut())
        .expect("node.toml has peers");
    for (j, p) in peers.iter_mut().enumerate() {
        let p = p.as_table_mut().expect("a peer is a table");
        p.insert(
            "p2p".into(),
            format!("{}:{P2P_PORT}", net.replica_ip(j)).into(),
        );
        p.insert(
            "api".into(),
            format!("http://{}:{HTTP_PORT}", net.replica_ip(j)).into(),
        );
    }
    std::fs::write(path, toml::to_string_pretty(&t).unwrap()).expect("write node.toml");
}

/// Bounds a step that should finish: a hang guard, not a performance bound.
pub async fn guard<T>(what: &str, secs: u64, fut: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(secs), fut).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: still not done after {secs} s (hang guard)"),
    }
}
