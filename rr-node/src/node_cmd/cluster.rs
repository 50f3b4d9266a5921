//! `rr-node keygen`, `rr-node run` and `rr-node localnet`: running replicas of
//! a PBFT cluster.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, ensure, Context};
use ed25519_dalek::SigningKey;
use rr_consensus::{PbftConfig, SystemClock};
use rr_core::{PreScheme, ReplicaId};
use rr_node::cluster::{ClusterConfig, ClusterFile, ClusterMember, ClusterTypes, Peer};
use rr_node::keystore::Keystore;
use rr_node::sealing::SealingKey;
use rr_node::{Node, NodeApi, RootIdentity};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// The keystore entry that holds a replica's secrets.
const REPLICA_KEY: &str = "replica";

#[derive(clap::Args)]
pub struct KeygenArgs {
    /// Directory to keep the replica's sealed key in (created if missing).
    #[arg(long)]
    keystore: PathBuf,
    /// Read the passphrase from this file instead of RR_NODE_PASSPHRASE or a prompt.
    #[arg(long)]
    passphrase_file: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct RunArgs {
    /// The replica's TOML configuration (see `rr-node run --help`).
    #[arg(long)]
    config: PathBuf,
    /// Log filter, overriding the file's `log`.
    #[arg(long)]
    log: Option<String>,
}

#[derive(clap::Args)]
pub struct LocalnetArgs {
    /// Replicas to run (n = 3f + 1; at least 4).
    #[arg(long, default_value_t = 4)]
    replicas: usize,
    /// Directory for the replicas' data, keys, logs and cluster.json. Running
    /// localnet again on it restarts the same cluster.
    #[arg(long)]
    data_dir: PathBuf,
    /// First HTTP port (replica i serves on BASE + i and talks to the other
    /// replicas on BASE + 100 + i); 0 picks free ports.
    #[arg(long, default_value_t = 7710)]
    base_port: u16,
    /// Scheme of new records: umbral or recrypt.
    #[arg(long, default_value = "umbral")]
    scheme: String,
    /// Log filter of the replicas.
    #[arg(long, default_value = "info")]
    log: String,
    /// Allow grants of single-proxy schemes (recrypt), where any one replica
    /// can re-encrypt for a grantee on its own, even after a revocation.
    /// Without it, recrypt records can be stored but not granted.
    #[arg(long)]
    allow_single_proxy: bool,
    /// Serve the replicas' APIs over plain HTTP instead of TLS. By default
    /// localnet makes a CA of its own (DIR/ca.pem, written into
    /// cluster.json, which rr pins) and a certificate per replica.
    #[arg(long)]
    plain_http: bool,
}

/// `node.toml`: one cluster replica.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplicaSettings {
    /// This replica's number: its place in `peers`.
    replica: u16,
    /// Data directory.
    data_dir: PathBuf,
    /// Where the HTTP API listens.
    listen: SocketAddr,
    /// Where to accept replica connections; default `peers[replica].p2p`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    p2p_listen: Option<SocketAddr>,
    /// The keystore `rr-node keygen` wrote; default `DATA_DIR/keys`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    keystore: Option<PathBuf>,
    /// A file holding the keystore's passphrase; default: RR_NODE_PASSPHRASE,
    /// then a prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    passphrase_file: Option<PathBuf>,
    /// Scheme of new records.
    #[serde(default = "default_scheme")]
    scheme: String,
    /// Largest record upload, in bytes.
    #[serde(default = "default_max_blob")]
    max_blob_size: u64,
    /// Most bytes one account may have uploaded that no committed record
    /// names yet (default 4 GiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    upload_quota_bytes: Option<u64>,
    /// Most bytes all accounts together may have uploaded that no committed
    /// record names yet (default 64 GiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_unreferenced_bytes: Option<u64>,
    /// Seconds an upload no committed record names is kept (default 86400).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    unreferenced_grace_secs: Option<u64>,
    /// Log filter.
    #[serde(default = "default_log")]
    log: String,
    /// Allow grants of single-proxy schemes (recrypt): any one replica can
    /// then re-encrypt for a grantee on its own, even after a revocation.
    /// Every replica must use the same value.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    allow_single_proxy: bool,
    /// Every replica, in order.
    peers: Vec<Peer>,
    /// The ordering engine's batching (`[pbft]`); every key optional.
    #[serde(default, skip_serializing_if = "PbftSettings::is_default")]
    pbft: PbftSettings,
    /// TLS on the HTTP API (`[tls]`): without it the API is plain HTTP,
    /// which `run` allows only on a loopback address unless
    /// `allow_plain_http` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tls: Option<TlsSettings>,
    /// Serve plain HTTP on an address other than loopback (logged as a
    /// warning): only behind a TLS proxy or on a trusted network.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    allow_plain_http: bool,
}

/// `[tls]` in `node.toml`: the API's certificate and key (PEM files), and
/// the CA that issued the peers' certificates, pinned when this replica
/// fetches blob copies from them.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsSettings {
    /// This replica's certificate chain, PEM.
    cert: PathBuf,
    /// Its private key, PEM (keep it 0600).
    key: PathBuf,
    /// The CA of the peers' certificates, PEM; default: the system's roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ca: Option<PathBuf>,
}

/// `[pbft]` in `node.toml`: how the primary batches calls, and the timers
/// that replace a primary that fails. Give every replica of a cluster the
/// same values: the primary changes with the view, and timers that differ
/// make replicas suspect a primary at different times.
#[derive(Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PbftSettings {
    /// Most calls in one block. Default 100 (ResilientDB's); 200–400 gives
    /// more throughput under heavy load, at some latency (see the README's
    /// `pbft_bench` figures).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_batch: Option<usize>,
    /// How long a partial batch may wait for more calls while another batch
    /// is being ordered, in milliseconds. Default 20. A call that finds the
    /// pipeline idle is proposed at once whatever this says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_batch_delay_ms: Option<u64>,
    /// Most blocks proposed and not yet executed. Default 16.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_inflight: Option<u64>,
    /// PBFT's request timer, in milliseconds. Default 500. When the oldest
    /// call a replica holds has waited this long it tells the other replicas
    /// about it; when it has waited as long again with no progress from the
    /// primary, the replica asks for a new view. A crashed primary is
    /// replaced one to two of these after the first call that finds it gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    request_timeout_ms: Option<u64>,
    /// How long a view change may take once 2f + 1 replicas asked for it,
    /// before they ask for the next view, in milliseconds; doubles with each
    /// view in a row that fails. Default 1000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    view_change_timeout_ms: Option<u64>,
    /// How far a block's time (set by the primary) may be from this
    /// replica's clock before it refuses the block, in milliseconds.
    /// Default 30000. Grants expire by block time, so keep the replicas'
    /// clocks synchronised (NTP) well within this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_clock_skew_ms: Option<u64>,
}

impl PbftSettings {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// The engine settings: the defaults, with what `[pbft]` sets, checked.
    fn config(&self) -> anyhow::Result<PbftConfig> {
        let d = PbftConfig::default();
        let config = {
            let mut config = PbftConfig::default();
            config.max_batch = self.max_batch.unwrap_or(d.max_batch);
            config.max_batch_delay = self
                .max_batch_delay_ms
                .map_or(d.max_batch_delay, std::time::Duration::from_millis);
            config.max_inflight = self.max_inflight.unwrap_or(d.max_inflight);
            config.request_timeout = ms_or(self.request_timeout_ms, d.request_timeout);
            config.view_change_timeout = ms_or(self.view_change_timeout_ms, d.view_change_timeout);
            config.max_clock_skew = ms_or(self.max_clock_skew_ms, d.max_clock_skew);
            config
        };
        config
            .validate()
            .map_err(|e| anyhow::anyhow!("[pbft] in the configuration: {e}"))?;
        Ok(config)
    }
}

fn ms_or(ms: Option<u64>, default: std::time::Duration) -> std::time::Duration {
    ms.map_or(default, std::time::Duration::from_millis)
}

fn default_scheme() -> String {
    "umbral".into()
}
fn default_max_blob() -> u64 {
    16 << 30
}
fn default_log() -> String {
    "info".into()
}

impl ReplicaSettings {
    fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the configuration {}", path.display()))?;
        let settings: Self = toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("invalid configuration {}: {e}", path.display()))?;
        Ok(settings)
    }

    fn cluster_config(&self) -> anyhow::Result<ClusterConfig> {
        let me = usize::from(self.replica);
        let p2p_listen = match (self.p2p_listen, self.peers.get(me)) {
            (Some(a), _) => a,
            (None, Some(p)) => p.p2p,
            (None, None) => bail!(
                "replica {} is not in peers (it lists {} replicas, numbered from 0)",
                self.replica,
                self.peers.len()
            ),
        };
        let mut config = ClusterConfig::new(
            ReplicaId(self.replica),
            self.data_dir.clone(),
            self.peers.clone(),
        );
        config.p2p_listen = p2p_listen;
        config.pbft = self.pbft.config()?;
        config.max_blob_size = self.max_blob_size;
        config.uploads = rr_node::uploads::UploadLimits::from_settings(
            self.upload_quota_bytes,
            self.max_unreferenced_bytes,
            self.unreferenced_grace_secs,
        )?;
        config.allow_single_proxy = self.allow_single_proxy;
        if let Some(ca) = self.tls.as_ref().and_then(|t| t.ca.as_ref()) {
            config.peers_ca = Some(
                std::fs::read_to_string(ca)
                    .with_context(|| format!("cannot read the CA {}", ca.display()))?,
            );
        }
        config.validate()?;
        Ok(config)
    }

    /// The API's TLS configuration, or `None` for plain HTTP, which is
    /// refused on anything but loopback unless `allow_plain_http`.
    fn tls(&self) -> anyhow::Result<Option<Arc<rustls::ServerConfig>>> {
        match &self.tls {
            Some(t) => Ok(Some(rr_node::http::tls::server_config_from_files(
                &t.cert, &t.key,
            )?)),
            None => {
                crate::plain_http_allowed(self.listen, self.allow_plain_http)?;
                Ok(None)
            }
        }
    }
}

/// The keystore passphrase: a file, RR_NODE_PASSPHRASE, or a prompt.
fn passphrase(file: Option<&Path>, confirm: bool) -> anyhow::Result<Zeroizing<String>> {
    if let Some(file) = file {
        let text = Zeroizing::new(
            std::fs::read_to_string(file)
                .with_context(|| format!("cannot read the passphrase file {}", file.display()))?,
        );
        let pass = Zeroizing::new(text.trim_end_matches(['\r', '\n']).to_string());
        ensure!(
            !pass.is_empty(),
            "the passphrase file {} is empty",
            file.display()
        );
        return Ok(pass);
    }
    if let Some(p) = rr_node::keystore::take_env_secret("RR_NODE_PASSPHRASE")
        .map_err(|_| anyhow::anyhow!("RR_NODE_PASSPHRASE is not valid UTF-8"))?
    {
        return Ok(p);
    }
    ensure!(
        std::io::IsTerminal::is_terminal(&std::io::stdin()),
        "no passphrase: set RR_NODE_PASSPHRASE, set passphrase_file, or run in a terminal to be asked"
    );
    let pass = Zeroizing::new(rpassword::prompt_password("replica key passphrase: ")?);
    if confirm {
        let again = Zeroizing::new(rpassword::prompt_password("again: ")?);
        ensure!(
            *pass == *again,
            "the passphrases differ; nothing was written"
        );
    }
    Ok(pass)
}

/// A replica's public keys, as every peers list names them.
#[derive(Serialize)]
struct PublicReplicaKey {
    public_key: String,
    sealing_key: String,
}

fn sealing_of(root: &RootIdentity) -> anyhow::Result<SealingKey> {
    root.sealing_key().context(
        "the replica key file has no root seed (made by an older rr-node); run rr-node keygen again",
    )
}

/// Makes a replica key in `keystore` and returns its public halves.
fn make_replica_key(keystore: &Keystore, pass: &str) -> anyhow::Result<PublicReplicaKey> {
    let root = RootIdentity::generate();
    keystore.create(REPLICA_KEY, pass, &root).with_context(|| {
        format!(
            "cannot create the replica key in {}",
            keystore.dir().display()
        )
    })?;
    Ok(PublicReplicaKey {
        public_key: hex::encode(root.signing_key().verifying_key().as_bytes()),
        sealing_key: sealing_of(&root)?.public().to_hex(),
    })
}

fn load_replica_key(keystore: &Path, pass: &str) -> anyhow::Result<(SigningKey, SealingKey)> {
    let root = Keystore::open(keystore)?
        .load(REPLICA_KEY, pass)
        .with_context(|| format!("cannot open the replica key in {}", keystore.display()))?;
    Ok((root.signing_key().clone(), sealing_of(&root)?))
}

/// `rr-node keygen`.
pub fn keygen(args: KeygenArgs) -> anyhow::Result<()> {
    let keystore = Keystore::open(&args.keystore)?;
    let pass = passphrase(args.passphrase_file.as_deref(), true)?;
    let public_key = make_replica_key(&keystore, &pass)?;
    println!("{}", serde_json::to_string_pretty(&public_key)?);
    eprintln!(
        "replica key sealed in {}; put public_key and sealing_key in every replica's peers list",
        keystore.dir().display()
    );
    Ok(())
}

/// `rr-node run`.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let mut settings = ReplicaSettings::load(&args.config)?;
    if let Some(log) = args.log {
        settings.log = log;
    }
    let config = settings.cluster_config()?;
    let metrics = crate::init_observability(&settings.log)?;
    let keystore = settings
        .keystore
        .clone()
        .unwrap_or_else(|| settings.data_dir.join("keys"));
    let pass = passphrase(settings.passphrase_file.as_deref(), false)?;
    let (key, sealing) = load_replica_key(&keystore, &pass)?;
    drop(pass);
    let tls = settings.tls()?;
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let served = match rr_pre::scheme_by_name(&settings.scheme) {
        Some(id) if id == rr_pre::Umbral::ID => {
            let node = Node::<ClusterTypes<rr_pre::Umbral>>::open_cluster(
                config,
                key,
                sealing,
                rr_pre::Umbral,
                Arc::new(SystemClock),
            )
            .await?;
            crate::serve(node, listener, settings.max_blob_size, metrics, tls).await
        }
        Some(id) if id == rr_pre::Recrypt::ID => {
            let node = Node::<ClusterTypes<rr_pre::Recrypt>>::open_cluster(
                config,
                key,
                sealing,
                rr_pre::Recrypt,
                Arc::new(SystemClock),
            )
            .await?;
            crate::serve(node, listener, settings.max_blob_size, metrics, tls).await
        }
        _ => bail!(
            "unknown scheme {:?}: use umbral or recrypt",
            settings.scheme
        ),
    };
    served
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

/// Makes the keys and configuration of a new local cluster in `dir`.
fn create_localnet(args: &LocalnetArgs) -> anyhow::Result<ClusterFile> {
    let n = args.replicas;
    let mut ports = Vec::with_capacity(n);
    for i in 0..n {
        let (http, p2p) = if args.base_port == 0 {
            (free_port()?, free_port()?)
        } else {
            let http = usize::from(args.base_port) + i;
            let p2p = http + 100;
            ensure!(
                p2p <= 65535,
                "--base-port {} is too high for {n} replicas",
                args.base_port
            );
            (http as u16, p2p as u16)
        };
        ports.push((http, p2p));
    }
    // The replicas' API certificates, from a CA of the cluster's own: its
    // key is dropped once they are issued (a local cluster needs no more).
    let ca = if args.plain_http {
        None
    } else {
        let ca = rr_node::http::tls::LocalCa::generate("rr-node localnet CA")?;
        std::fs::write(args.data_dir.join("ca.pem"), ca.cert_pem())
            .with_context(|| format!("cannot write {}", args.data_dir.join("ca.pem").display()))?;
        Some(ca)
    };
    let scheme = if ca.is_some() { "https" } else { "http" };
    let mut members = Vec::with_capacity(n);
    for (i, (http, p2p)) in ports.iter().enumerate() {
        let rdir = args.data_dir.join(format!("replica-{i}"));
        std::fs::create_dir_all(&rdir)
            .with_context(|| format!("cannot create {}", rdir.display()))?;
        // A local test cluster keeps each key's passphrase beside it: the key
        // is sealed at rest, but this is for development, not production.
        let mut secret = Zeroizing::new([0u8; 24]);
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut secret[..]);
        let pass = Zeroizing::new(hex::encode(&secret[..]));
        let pass_file = rdir.join("passphrase");
        write_private(&pass_file, pass.as_bytes())?;
        let public = make_replica_key(&Keystore::open(rdir.join("keys"))?, &pass)?;
        if let Some(ca) = &ca {
            let issued = ca.issue(&["127.0.0.1".to_string(), "localhost".to_string()])?;
            std::fs::write(rdir.join("tls-cert.pem"), &issued.cert_pem)?;
            write_private(&rdir.join("tls-key.pem"), issued.key_pem.as_bytes())?;
        }
        members.push(ClusterMember {
            replica: i as u16,
            api: format!("{scheme}://127.0.0.1:{http}"),
            p2p: SocketAddr::from(([127, 0, 0, 1], *p2p)),
            public_key: public.public_key,
            sealing_key: public.sealing_key,
            pid: None,
            config: rdir.join("node.toml"),
            log: rdir.join("node.log"),
        });
    }
    let peers: Vec<Peer> = members.iter().map(ClusterMember::peer).collect();
    for (i, m) in members.iter().enumerate() {
        let rdir = args.data_dir.join(format!("replica-{i}"));
        let settings = ReplicaSettings {
            replica: i as u16,
            data_dir: rdir.clone(),
            listen: SocketAddr::from(([127, 0, 0, 1], ports[i].0)),
            p2p_listen: None,
            keystore: Some(rdir.join("keys")),
            passphrase_file: Some(rdir.join("passphrase")),
            scheme: args.scheme.clone(),
            max_blob_size: default_max_blob(),
            upload_quota_bytes: None,
            max_unreferenced_bytes: None,
            unreferenced_grace_secs: None,
            log: args.log.clone(),
            allow_single_proxy: args.allow_single_proxy,
            peers: peers.clone(),
            pbft: PbftSettings::default(),
            tls: ca.as_ref().map(|_| TlsSettings {
                cert: rdir.join("tls-cert.pem"),
                key: rdir.join("tls-key.pem"),
                ca: Some(args.data_dir.join("ca.pem")),
            }),
            allow_plain_http: false,
        };
        std::fs::write(&m.config, toml::to_string_pretty(&settings)?)
            .with_context(|| format!("cannot write {}", m.config.display()))?;
    }
    Ok(ClusterFile {
        n,
        f: (n - 1) / 3,
        scheme: args.scheme.clone(),
        replicas: members,
        ca: ca.map(|ca| ca.cert_pem()),
    })
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(5)..].join("\n    ")
}

#[cfg(unix)]
fn terminate(pid: u32) {
    if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
}

#[cfg(not(unix))]
fn terminate(_pid: u32) {}

/// `rr-node localnet`.
pub async fn localnet(args: LocalnetArgs) -> anyhow::Result<()> {
    ensure!(
        (4..=64).contains(&args.replicas),
        "--replicas must be between 4 and 64 (a cluster of n = 3f + 1 tolerates f faults; 4 tolerates 1)"
    );
    ensure!(
        rr_pre::scheme_by_name(&args.scheme).is_some(),
        "unknown scheme {:?}: use umbral or recrypt",
        args.scheme
    );
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create {}", args.data_dir.display()))?;
    let cluster_path = args.data_dir.join("cluster.json");
    let mut cluster = if cluster_path.exists() {
        let c = ClusterFile::read(&cluster_path)?;
        ensure!(
            c.n == args.replicas,
            "{} holds a cluster of {} replicas; pass --replicas {} or use another --data-dir",
            args.data_dir.display(),
            c.n,
            c.n
        );
        eprintln!("restarting the cluster in {}", args.data_dir.display());
        c
    } else {
        eprintln!(
            "creating a {}-replica cluster in {}",
            args.replicas,
            args.data_dir.display()
        );
        create_localnet(&args)?
    };
    let exe = std::env::current_exe().context("cannot find the rr-node executable")?;
    let mut children = Vec::with_capacity(cluster.n);
    for m in &mut cluster.replicas {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&m.log)
            .with_context(|| format!("cannot open {}", m.log.display()))?;
        let child = tokio::process::Command::new(&exe)
            .arg("run")
            .arg("--config")
            .arg(&m.config)
            .env_remove("RR_NODE_PASSPHRASE")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start replica {}", m.replica))?;
        m.pid = child.id();
        children.push(Some(child));
    }
    // Wait until every replica answers.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    for (i, m) in cluster.replicas.iter().enumerate() {
        let api = cluster.api_client(m)?;
        loop {
            if api.info().await.is_ok() {
                break;
            }
            if let Some(Some(c)) = children.get_mut(i) {
                if let Some(status) = c.try_wait()? {
                    bail!(
                        "replica {i} exited ({status}) while starting; the end of {}:\n    {}",
                        m.log.display(),
                        log_tail(&m.log)
                    );
                }
            }
            ensure!(
                tokio::time::Instant::now() < deadline,
                "replica {i} did not answer on {} within 60 s; see {}",
                m.api,
                m.log.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    cluster.write(&cluster_path)?;
    println!("cluster ready: {}", cluster_path.display());
    for m in &cluster.replicas {
        println!(
            "  replica {}  {}  pid {}  log {}",
            m.replica,
            m.api,
            m.pid.map(|p| p.to_string()).unwrap_or_default(),
            m.log.display()
        );
    }
    println!(
        "use it with: rr --node {} ...   (Ctrl-C stops every replica)",
        cluster_path.display()
    );
    use std::io::Write;
    std::io::stdout().flush()?;

    let shutdown = crate::shutdown_signal()?;
    tokio::pin!(shutdown);
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tick.tick() => {
                for (i, slot) in children.iter_mut().enumerate() {
                    if let Some(c) = slot {
                        if let Some(status) = c.try_wait()? {
                            let m = &cluster.replicas[i];
                            eprintln!(
                                "replica {i} (pid {}) exited: {status}; the others go on. Restart it with: {} run --config {}",
                                m.pid.unwrap_or_default(),
                                exe.display(),
                                m.config.display()
                            );
                            *slot = None;
                        }
                    }
                }
                if children.iter().all(Option::is_none) {
                    eprintln!("every replica has exited");
                    break;
                }
            }
        }
    }
    for c in children.iter().flatten() {
        if let Some(pid) = c.id() {
            terminate(pid);
        }
    }
    for c in children.iter_mut().flatten() {
        if tokio::time::timeout(Duration::from_secs(10), c.wait())
            .await
            .is_err()
        {
            let _ = c.kill().await;
        }
    }
    for m in &mut cluster.replicas {
        m.pid = None;
    }
    cluster.write(&cluster_path)?;
    eprintln!("cluster stopped; run the same command to start it again");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(extra: &str) -> anyhow::Result<ReplicaSettings> {
        let text = format!(
            "replica = 0\ndata_dir = \"/tmp/r0\"\nlisten = \"127.0.0.1:7000\"\npeers = []\n{extra}"
        );
        Ok(toml::from_str(&text)?)
    }

    #[test]
    fn pbft_batching_comes_from_the_configuration_or_the_defaults() {
        let d = PbftConfig::default();
        let none = settings("").unwrap().pbft.config().unwrap();
        assert_eq!(
            (none.max_batch, none.max_batch_delay, none.max_inflight),
            (d.max_batch, d.max_batch_delay, d.max_inflight)
        );
        let set = settings("[pbft]\nmax_batch = 400\nmax_batch_delay_ms = 5\nmax_inflight = 4\n")
            .unwrap()
            .pbft
            .config()
            .unwrap();
        assert_eq!(set.max_batch, 400);
        assert_eq!(set.max_batch_delay, std::time::Duration::from_millis(5));
        assert_eq!(set.max_inflight, 4);
        assert_eq!(set.checkpoint_interval, d.checkpoint_interval);
        assert_eq!(set.request_timeout, d.request_timeout);
    }

    #[test]
    fn pbft_timers_come_from_the_configuration() {
        let ms = std::time::Duration::from_millis;
        let set = settings(
            "[pbft]
request_timeout_ms = 250
view_change_timeout_ms = 700
max_clock_skew_ms = 5000
",
        )
        .unwrap()
        .pbft
        .config()
        .unwrap();
        assert_eq!(
            (
                set.request_timeout,
                set.view_change_timeout,
                set.max_clock_skew
            ),
            (ms(250), ms(700), ms(5000))
        );
        let err = settings(
            "[pbft]
request_timeout_ms = 0
",
        )
        .unwrap()
        .pbft
        .config()
        .unwrap_err()
        .to_string();
        assert!(err.contains("request_timeout"), "{err}");
    }

    #[test]
    fn bad_pbft_settings_are_refused_with_what_is_wrong() {
        let err = settings("[pbft]\nmax_batch = 0\n")
            .unwrap()
            .pbft
            .config()
            .unwrap_err()
            .to_string();
        assert!(err.contains("[pbft]") && err.contains("max_batch"), "{err}");
        let err = settings("[pbft]\nbatch = 10\n").err().unwrap().to_string();
        assert!(
            err.contains("unknown field") && err.contains("batch"),
            "{err}"
        );
    }

    #[test]
    fn a_configuration_without_pbft_settings_is_written_without_the_table() {
        let s = settings("").unwrap();
        let text = toml::to_string_pretty(&s).unwrap();
        assert!(!text.contains("[pbft]"), "{text}");
        assert_eq!(
            toml::from_str::<ReplicaSettings>(&text).unwrap().pbft,
            s.pbft
        );
    }
}
