//! `rr-node`: the reference Resilient Records node.
//!
//! ```text
//! rr-node dev --data-dir ./rr-data --listen 127.0.0.1:7700 [--scheme umbral|recrypt]
//! ```
//!
//! Settings come from a TOML file (`--config`), then environment variables
//! (`RR_NODE_DATA_DIR`, `RR_NODE_LISTEN`, `RR_NODE_MAX_BLOB_SIZE`,
//! `RR_NODE_LOG`, `RR_NODE_SCHEME`), then flags, each overriding the one
//! before.
//!
//! `scheme` is the default scheme of new records (`umbral` unless set), the
//! one `GET /v1/info` names and `rr put` uses unless told otherwise. The node
//! serves records of every scheme it was built with, whatever the default.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use rr_core::{PreScheme, SchemeId};
use rr_node::http::{self, ServerConfig};
use rr_node::{DevConfig, Node, NodeTypes};

#[path = "../node_cmd/cluster.rs"]
mod cluster;
use rr_pre::{Recrypt, Umbral};
use serde::Deserialize;

#[derive(Parser)]
#[command(name = "rr-node", version, about = "The Resilient Records node")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one replica (Solo engine, filesystem blobs, redb) in a data directory.
    Dev(DevArgs),
    /// Make a replica key (sealed under a passphrase) for a cluster replica;
    /// prints its public key.
    Keygen(cluster::KeygenArgs),
    /// Run one replica of a PBFT cluster from its TOML configuration.
    Run(cluster::RunArgs),
    /// Start an n-replica PBFT cluster on 127.0.0.1 as separate processes and
    /// write DIR/cluster.json for `rr --node DIR/cluster.json`.
    Localnet(cluster::LocalnetArgs),
}

#[derive(clap::Args)]
struct DevArgs {
    /// TOML file with settings (data_dir, listen, max_blob_size, log, scheme,
    /// upload_quota_bytes, max_unreferenced_bytes, unreferenced_grace_secs).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Directory holding the ledger, key fragments and blobs (created if missing).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Address to serve the HTTP API on [default: 127.0.0.1:7700].
    #[arg(long)]
    listen: Option<String>,
    /// Largest record upload, in bytes [default: 17179869184, 16 GiB].
    #[arg(long)]
    max_blob_size: Option<u64>,
    /// Bytes one account may have uploaded that no committed record names
    /// yet [default: 4294967296, 4 GiB].
    #[arg(long, value_name = "BYTES")]
    upload_quota_bytes: Option<u64>,
    /// Bytes all accounts together may have uploaded that no committed
    /// record names yet [default: 68719476736, 64 GiB].
    #[arg(long, value_name = "BYTES")]
    max_unreferenced_bytes: Option<u64>,
    /// Seconds an upload no committed record names is kept before it is
    /// deleted [default: 86400, 24 h].
    #[arg(long, value_name = "SECS")]
    unreferenced_grace_secs: Option<u64>,
    /// Log filter, such as `info` or `rr_node=debug` [default: info].
    #[arg(long)]
    log: Option<String>,
    /// Default scheme of new records: umbral or recrypt [default: umbral].
    /// Records of every scheme are served either way.
    #[arg(long, value_name = "NAME")]
    scheme: Option<String>,
    /// Serve the API over TLS with this certificate chain (PEM); needs
    /// --tls-key.
    #[arg(long, value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// The TLS certificate's private key (PEM).
    #[arg(long, value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// Serve plain HTTP on an address other than loopback (logged as a
    /// warning): only behind a TLS proxy or on a trusted network.
    #[arg(long)]
    allow_plain_http: bool,
}

/// The settings of `rr-node dev`, after merging file, environment and flags.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DevSettings {
    data_dir: PathBuf,
    listen: String,
    max_blob_size: u64,
    log: String,
    scheme: String,
    #[serde(default)]
    upload_quota_bytes: Option<u64>,
    #[serde(default)]
    max_unreferenced_bytes: Option<u64>,
    #[serde(default)]
    unreferenced_grace_secs: Option<u64>,
    #[serde(default)]
    tls_cert: Option<PathBuf>,
    #[serde(default)]
    tls_key: Option<PathBuf>,
    #[serde(default)]
    allow_plain_http: bool,
}

impl DevSettings {
    fn load(args: &DevArgs) -> anyhow::Result<Self> {
        let mut b = config::Config::builder()
            .set_default("listen", "127.0.0.1:7700")?
            .set_default("max_blob_size", 16u64 << 30)?
            .set_default("log", "info")?
            .set_default("scheme", Umbral::ID.name())?;
        if let Some(path) = &args.config {
            anyhow::ensure!(
                path.is_file(),
                "config file {} does not exist",
                path.display()
            );
            b = b.add_source(config::File::from(path.as_path()).format(config::FileFormat::Toml));
        }
        b = b.add_source(
            config::Environment::with_prefix("RR_NODE")
                .prefix_separator("_")
                .try_parsing(true),
        );
        if let Some(v) = &args.data_dir {
            b = b.set_override("data_dir", v.to_string_lossy().into_owned())?;
        }
        if let Some(v) = &args.listen {
            b = b.set_override("listen", v.as_str())?;
        }
        if let Some(v) = args.max_blob_size {
            b = b.set_override("max_blob_size", v)?;
        }
        for (key, value) in [
            ("upload_quota_bytes", args.upload_quota_bytes),
            ("max_unreferenced_bytes", args.max_unreferenced_bytes),
            ("unreferenced_grace_secs", args.unreferenced_grace_secs),
        ] {
            if let Some(v) = value {
                b = b.set_override(key, v)?;
            }
        }
        if let Some(v) = &args.log {
            b = b.set_override("log", v.as_str())?;
        }
        if let Some(v) = &args.tls_cert {
            b = b.set_override("tls_cert", v.to_string_lossy().into_owned())?;
        }
        if let Some(v) = &args.tls_key {
            b = b.set_override("tls_key", v.to_string_lossy().into_owned())?;
        }
        if args.allow_plain_http {
            b = b.set_override("allow_plain_http", true)?;
        }
        if let Some(v) = &args.scheme {
            b = b.set_override("scheme", v.as_str())?;
        }
        let settings: DevSettings = b
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(|e| match e.to_string() {
                m if m.contains("data_dir") && m.contains("missing") => anyhow::anyhow!(
                    "no data directory: pass --data-dir DIR, set RR_NODE_DATA_DIR, or put data_dir in the config file"
                ),
                m => anyhow::anyhow!("invalid settings: {m}"),
            })?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            !self.data_dir.as_os_str().is_empty(),
            "data_dir is empty: give the directory the node keeps its data in"
        );
        anyhow::ensure!(
            self.max_blob_size > 0,
            "max_blob_size must be at least 1 byte"
        );
        self.listen.parse::<SocketAddr>().map_err(|_| {
            anyhow::anyhow!(
                "listen address {:?} is not IP:PORT (for example 127.0.0.1:7700)",
                self.listen
            )
        })?;
        tracing_subscriber::EnvFilter::try_new(&self.log)
            .map_err(|e| anyhow::anyhow!("log filter {:?} is invalid: {e}", self.log))?;
        self.scheme_id()?;
        anyhow::ensure!(
            self.tls_cert.is_some() == self.tls_key.is_some(),
            "TLS needs both a certificate and its key: give tls_cert and tls_key (--tls-cert, --tls-key), or neither"
        );
        Ok(())
    }

    /// The API's TLS configuration, or `None` for plain HTTP (loopback
    /// only, unless allowed).
    fn tls(&self) -> anyhow::Result<Option<Arc<rustls::ServerConfig>>> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Ok(Some(http::tls::server_config_from_files(cert, key)?)),
            _ => {
                let listen: SocketAddr = self.listen.parse()?;
                plain_http_allowed(listen, self.allow_plain_http)?;
                Ok(None)
            }
        }
    }

    /// The default scheme of new records; an error naming the schemes this
    /// build has if `scheme` is none of them.
    fn scheme_id(&self) -> anyhow::Result<SchemeId> {
        let compiled = rr_pre::Schemes::all();
        rr_pre::scheme_by_name(&self.scheme)
            .filter(|id| compiled.get(*id).is_some())
            .ok_or_else(|| {
                let names: Vec<_> = compiled.ids().iter().map(|id| id.name()).collect();
                anyhow::anyhow!(
                    "unknown scheme {:?}: this rr-node has {}; set --scheme, RR_NODE_SCHEME or scheme in the config file to one of them",
                    self.scheme,
                    names.join(", ")
                )
            })
    }
}

/// Resolves on Ctrl-C or SIGTERM. The handlers are installed when this is
/// called, not when it is first polled, so a signal that arrives just after
/// the node says it is listening is not lost (or fatal).
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    let (mut int, mut term) = {
        use tokio::signal::unix::{signal, SignalKind};
        (
            signal(SignalKind::interrupt())?,
            signal(SignalKind::terminate())?,
        )
    };
    Ok(async move {
        #[cfg(unix)]
        tokio::select! {
            _ = int.recv() => {},
            _ = term.recv() => {},
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!(target: "rr_node", "shutdown signal received; finishing requests in flight");
    })
}

/// Starts logging (to stderr) and the Prometheus recorder `/metrics` reads.
fn init_observability(log: &str) -> anyhow::Result<metrics_exporter_prometheus::PrometheusHandle> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(log)
                .map_err(|e| anyhow::anyhow!("log filter {log:?} is invalid: {e}"))?,
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .context("installing the metrics recorder")
}

async fn dev(args: DevArgs) -> anyhow::Result<()> {
    let settings = DevSettings::load(&args)?;
    let metrics = init_observability(&settings.log)?;
    // The node's own scheme is a type parameter: one arm per scheme, the
    // rest is generic.
    match settings.scheme_id()? {
        SchemeId::UMBRAL => open_dev(settings, Umbral, metrics).await,
        SchemeId::RECRYPT => open_dev(settings, Recrypt, metrics).await,
        other => anyhow::bail!("scheme {other} cannot be a dev node's default scheme"),
    }
}

/// Opens the dev node with `pre` as its default scheme and serves it until a
/// shutdown signal.
async fn open_dev<P: PreScheme>(
    settings: DevSettings,
    pre: P,
    metrics: metrics_exporter_prometheus::PrometheusHandle,
) -> anyhow::Result<()> {
    let tls = settings.tls()?;
    let mut config = DevConfig::new(&settings.data_dir);
    config.max_blob_size = settings.max_blob_size;
    config.uploads = rr_node::uploads::UploadLimits::from_settings(
        settings.upload_quota_bytes,
        settings.max_unreferenced_bytes,
        settings.unreferenced_grace_secs,
    )?;
    let node = Node::open_dev_with_scheme(config, pre, Arc::new(rr_consensus::SystemClock))
        .await
        .with_context(|| format!("opening the node in {}", settings.data_dir.display()))?;
    let listener = tokio::net::TcpListener::bind(&settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    serve(node, listener, settings.max_blob_size, metrics, tls).await
}

/// Serves `node`'s HTTP API on `listener` until Ctrl-C or SIGTERM, then
/// finishes the requests in flight and stops the node cleanly.
async fn serve<T: NodeTypes>(
    node: Arc<Node<T>>,
    listener: tokio::net::TcpListener,
    max_blob_size: u64,
    metrics: metrics_exporter_prometheus::PrometheusHandle,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    let shutdown = shutdown_signal().context("installing the signal handlers")?;
    let router = http::router(
        node.clone(),
        ServerConfig::default()
            .with_max_blob_bytes(max_blob_size)
            .with_metrics(metrics),
    );
    let info = node.info();
    let own_key = info
        .replica_set
        .key(info.replica)
        .map(|k| k.to_string())
        .unwrap_or_default();
    tracing::info!(target: "rr_node", %addr, replica = %info.replica, replicas = info.replicas, height = info.status.height, scheme = T::Pre::ID.name(), key = %own_key, "serving");
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!("listening on {scheme}://{addr}");
    // Clients pin this key on first use: compare it out of band.
    println!("node key {own_key}");
    use std::io::Write;
    std::io::stdout().flush()?;
    http::serve_with(
        listener,
        router,
        http::ConnectionLimits::default(),
        tls,
        shutdown,
    )
    .await?;
    node.shutdown().await?;
    tracing::info!(target: "rr_node", "stopped cleanly");
    Ok(())
}

/// Plain HTTP is for loopback: on any other address it needs the operator's
/// explicit consent (`allow_plain_http`), and is logged as a warning.
fn plain_http_allowed(listen: SocketAddr, allowed: bool) -> anyhow::Result<()> {
    if listen.ip().is_loopback() {
        return Ok(());
    }
    anyhow::ensure!(
        allowed,
        "the API would listen on {listen} without TLS: medical metadata would cross the network in clear. Configure TLS (a certificate and key: [tls] in node.toml, or --tls-cert/--tls-key), or set allow_plain_http (--allow-plain-http) if a TLS proxy or a trusted network covers it"
    );
    tracing::warn!(target: "rr_node", %listen, "serving plain HTTP on a non-loopback address (allow_plain_http)");
    Ok(())
}

#[path = "../malloc_tuning.rs"]
mod malloc_tuning;

fn main() -> ExitCode {
    malloc_tuning::tune();
    // Out of the environment before the runtime's threads start (see
    // take_env_secret); the value is kept for when it is needed.
    let _ = rr_node::keystore::take_env_secret("RR_NODE_PASSPHRASE");
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Dev(args) => dev(args).await,
            Command::Keygen(args) => cluster::keygen(args),
            Command::Run(args) => cluster::run(args).await,
            Command::Localnet(args) => cluster::localnet(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
