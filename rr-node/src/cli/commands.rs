//! The commands: keys, put, grant, get, revoke, ls, audit, receipt, trust.
//!
//! A key serves every scheme ([`RootIdentity`]); each command picks the
//! typed [`Client`] of the scheme it needs: `put` the one asked for (or the
//! node's default), `grant` and `get` the record's. Revoking, auditing and
//! listing sign with the account key only, so any scheme's client does.
//!
//! Every answer acted on is checked by [`Replicas`] against the replica set
//! rr trusts: a cluster's `cluster.json`, or a dev node's key pinned on
//! first use (see [`super::trust`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rr_core::{
    AccountId, Call, ErrorCode, GrantId, GrantInfo, PreScheme, Purpose, RecordId, RecordInfo,
    Retrieve, SchemeId, Timestamp, TxId,
};
use rr_node::keystore::{Keystore, KeystoreError};
use rr_node::receipt::{Proof, ReceiptFile};
use rr_node::{
    Authorization, Client, ClientError, GrantOptions, NodeApi, NodeError, NodeInfo, PublicCard,
    Replicas, RootIdentity, CLIENT_SCHEMES,
};
use rr_pre::{Recrypt, Umbral};
use serde_json::json;
use zeroize::Zeroizing;

use super::args::{Cli, Command, KeysCommand, ReceiptCommand, TrustCommand};
use super::fail::Failure;
use super::output::{self, print_json};
use super::trust::{self, PinCheck};
use super::{progress, receipt};

/// A client of one of the schemes this `rr` can use.
enum AnyClient {
    Umbral(Client<Umbral>),
    Recrypt(Client<Recrypt>),
}

/// Runs `$body` with `$c` bound to the typed client in `$any` (one copy of
/// the code, compiled once per scheme).
macro_rules! with_client {
    ($any:expr, $c:ident => $body:expr) => {
        match $any {
            AnyClient::Umbral($c) => $body,
            AnyClient::Recrypt($c) => $body,
        }
    };
}

/// What the replica set rr talks to is trusted as.
enum Anchor {
    /// A dev node at this URL, whose key rr pinned.
    Pinned { url: String, key: AccountId },
    /// The replicas a cluster.json names.
    Cluster { file: PathBuf },
}

/// The key acted as (if any), and the replica set, checked.
struct Session {
    replicas: Replicas,
    identity: Option<RootIdentity>,
    /// The node's own description, if connecting asked for it.
    info: Option<NodeInfo>,
    anchor: Anchor,
}

impl Session {
    fn me(&self) -> Result<&RootIdentity, Failure> {
        self.identity.as_ref().ok_or_else(|| {
            Failure::new(
                "no key to act as",
                "this command signs with one of your keys",
            )
            .hint("pass --as NAME")
        })
    }

    fn typed<P: PreScheme>(&self, me: &RootIdentity, pre: P) -> Result<Client<P>, ClientError> {
        let identity = me.for_scheme(&pre)?;
        Ok(Client::new(self.replicas.clone(), Arc::new(pre), identity))
    }

    fn account(&self) -> Result<AccountId, Failure> {
        Ok(self.me()?.account())
    }

    /// The signed authorization of a read of `scope` (every read of ledger
    /// state names who asks: see `NodeApi`).
    fn authorize(&self, scope: String) -> Result<Authorization, Failure> {
        Ok(Authorization::sign(
            self.me()?.signing_key(),
            &self.replicas.replica_set().digest(),
            scope,
        ))
    }

    /// How to check a receipt of this replica set offline.
    fn verify_flag(&self) -> String {
        match &self.anchor {
            Anchor::Pinned { key, .. } => format!("--key {key}"),
            Anchor::Cluster { file } => format!("--cluster {}", file.display()),
        }
    }
}

fn scheme_names(schemes: &[SchemeId]) -> String {
    let names: Vec<&str> = schemes.iter().map(|s| s.name()).collect();
    names.join(", ")
}

/// The settings every command shares.
#[derive(Debug, Clone)]
pub struct Globals {
    /// Node URL.
    pub node: String,
    /// Keystore directory, if given.
    pub keystore: Option<PathBuf>,
    /// Key to act as.
    pub as_name: Option<String>,
    /// JSON output.
    pub json: bool,
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<(), Failure> {
    let globals = Globals {
        node: cli.node,
        keystore: cli.keystore,
        as_name: cli.as_name,
        json: cli.json,
    };
    match cli.command {
        Command::Keys(keys) => globals.keys(keys),
        // Offline: no node, no keystore, no passphrase.
        Command::Receipt(ReceiptCommand::Verify { file, cluster, key }) => {
            receipt::verify(globals.json, &file, cluster.as_deref(), key.as_deref())
        }
        Command::Trust(command) => globals.trust(command),
        command => {
            // One thread is enough: a transfer's crypto and file I/O run on
            // threads of their own, and waking one runtime thread from
            // another for every chunk would cost more than it gains.
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| Failure::new("cannot start the async runtime", e))?;
            runtime.block_on(globals.remote(command))
        }
    }
}

fn now() -> Timestamp {
    Timestamp::from_system_time(SystemTime::now())
}

/// The passphrase from `RR_PASSPHRASE`, or from a prompt on the terminal
/// (asked twice if `confirm`).
fn passphrase(prompt: &str, confirm: bool) -> Result<Zeroizing<String>, Failure> {
    let from_env = rr_node::keystore::take_env_secret("RR_PASSPHRASE").map_err(|_| {
        Failure::new("cannot read RR_PASSPHRASE", "it is not valid UTF-8")
            .hint("set it to the passphrase as text")
    })?;
    if let Some(p) = from_env {
        return Ok(p);
    }
    let read = |prompt: &str| {
        rpassword::prompt_password(prompt)
            .map(Zeroizing::new)
            .map_err(|e| {
                Failure::new("cannot read a passphrase", e)
                    .hint("run rr in a terminal, or set RR_PASSPHRASE")
            })
    };
    let first = read(prompt)?;
    if confirm {
        let second = read("Repeat the passphrase: ")?;
        if *first != *second {
            return Err(
                Failure::new("cannot create the key", "the two passphrases differ")
                    .hint("run the command again"),
            );
        }
    }
    Ok(first)
}

impl Globals {
    fn keystore(&self) -> Result<Keystore, Failure> {
        let dir = match &self.keystore {
            Some(dir) => dir.clone(),
            None => Keystore::default_dir().ok_or_else(|| {
                Failure::new("cannot find the keystore", "HOME is not set")
                    .hint("pass --keystore DIR or set RR_KEYSTORE")
            })?,
        };
        Keystore::open(dir).map_err(|e| Failure::keystore("cannot open the keystore", &e))
    }

    /// Account ids → local key names, to print names instead of ids.
    fn names(&self, keystore: &Keystore) -> HashMap<AccountId, String> {
        keystore
            .list()
            .unwrap_or_default()
            .into_iter()
            .filter_map(|n| keystore.public_card(&n).ok().map(|c| (c.account, n)))
            .collect()
    }

    fn keys(&self, command: KeysCommand) -> Result<(), Failure> {
        let keystore = self.keystore()?;
        match command {
            KeysCommand::New { name } => {
                let what = format!("cannot create key {name}");
                Keystore::validate_name(&name).map_err(|e| Failure::keystore(&what, &e))?;
                if keystore.contains(&name) {
                    let err = KeystoreError::Exists {
                        name: name.clone(),
                        dir: keystore.dir().to_path_buf(),
                    };
                    return Err(Failure::keystore(&what, &err));
                }
                let pass = passphrase(&format!("Passphrase for the new key {name}: "), true)?;
                let identity = RootIdentity::generate();
                let card = keystore
                    .create(&name, &pass, &identity)
                    .map_err(|e| Failure::keystore(&what, &e))?;
                let card_file = keystore.card_path(&name);
                if self.json {
                    let mut out = serde_json::to_value(&card).expect("a card serializes");
                    out["name"] = json!(name);
                    out["card_file"] = json!(card_file.display().to_string());
                    print_json(&out);
                } else {
                    println!("created key {name}");
                    println!("account     {}", card.account);
                    println!("schemes     {}", scheme_names(&card.schemes()));
                    println!("public card {}", card_file.display());
                    println!("share the card with `rr keys show {name} --json > {name}.card.json`; keep the passphrase safe: without it the key cannot be opened");
                }
                Ok(())
            }
            KeysCommand::Show { name } => {
                let card = keystore
                    .public_card(&name)
                    .map_err(|e| Failure::keystore(format!("cannot show key {name}"), &e))?;
                if self.json {
                    print_json(&serde_json::to_value(&card).expect("a card serializes"));
                } else {
                    println!("key            {name}");
                    println!("account        {}", card.account);
                    for scheme in card.schemes() {
                        let key = card.key_for(scheme).unwrap_or_default();
                        println!("{:<14} {key}", format!("{} key", scheme.name()));
                    }
                    println!("card file      {}", keystore.card_path(&name).display());
                }
                Ok(())
            }
            KeysCommand::List => {
                let names = keystore
                    .list()
                    .map_err(|e| Failure::keystore("cannot list keys", &e))?;
                let cards: Vec<(String, Option<PublicCard>)> = names
                    .into_iter()
                    .map(|n| {
                        let card = keystore.public_card(&n).ok();
                        (n, card)
                    })
                    .collect();
                if self.json {
                    let keys: Vec<_> = cards
                        .iter()
                        .map(|(n, c)| {
                            json!({
                                "name": n,
                                "account": c.as_ref().map(|c| c.account.to_string()),
                                "schemes": c.as_ref().map(|c| c.schemes().iter().map(|s| s.name()).collect::<Vec<_>>()),
                            })
                        })
                        .collect();
                    print_json(
                        &json!({ "keystore": keystore.dir().display().to_string(), "keys": keys }),
                    );
                } else if cards.is_empty() {
                    println!(
                        "no keys in {}; create one with `rr keys new NAME`",
                        keystore.dir().display()
                    );
                } else {
                    for (n, c) in cards {
                        let account = c.map(|c| c.account.to_string()).unwrap_or_default();
                        println!("{n:<20} {account}");
                    }
                }
                Ok(())
            }
        }
    }

    /// `rr trust list` and `rr trust forget URL`.
    fn trust(&self, command: TrustCommand) -> Result<(), Failure> {
        let keystore = self.keystore()?;
        let dir = keystore.dir();
        match command {
            TrustCommand::List => {
                let known = trust::known_nodes(dir)?;
                if self.json {
                    print_json(&json!({
                        "file": dir.join(trust::KNOWN_NODES_FILE).display().to_string(),
                        "nodes": known.iter().map(|(url, p)| json!({
                            "url": url,
                            "key": p.key,
                            "first_seen": p.first_seen,
                        })).collect::<Vec<_>>(),
                    }));
                } else if known.is_empty() {
                    println!(
                        "no node keys pinned in {}; rr pins a dev node's key the first time it uses it",
                        dir.display()
                    );
                } else {
                    for (url, p) in &known {
                        println!("{url:<28} {}  pinned {}", p.key, p.first_seen);
                    }
                }
                Ok(())
            }
            TrustCommand::Forget { url } => {
                let url = trust::normalize_url(&url);
                match trust::forget(dir, &url)? {
                    Some(pin) => {
                        if self.json {
                            print_json(&json!({ "url": url, "forgotten_key": pin.key }));
                        } else {
                            println!("forgot key {} of node {url}; the next command pins the key it presents", pin.key);
                        }
                        Ok(())
                    }
                    None => {
                        let known = trust::known_nodes(dir)?;
                        let pinned = if known.is_empty() {
                            "none is pinned".to_string()
                        } else {
                            format!(
                                "pinned: {}",
                                known.keys().cloned().collect::<Vec<_>>().join(", ")
                            )
                        };
                        Err(Failure::new(
                            format!("cannot forget node {url}"),
                            format!(
                                "no key is pinned for it in {}",
                                dir.join(trust::KNOWN_NODES_FILE).display()
                            ),
                        )
                        .hint(format!("give the URL as rr uses it ({pinned})")))
                    }
                }
            }
        }
    }

    /// Opens the key named by `--as`.
    fn identity(&self, keystore: &Keystore) -> Result<RootIdentity, Failure> {
        let Some(name) = &self.as_name else {
            let known = keystore.list().unwrap_or_default();
            let keys = if known.is_empty() {
                "create one with `rr keys new NAME`".to_string()
            } else {
                format!("keys here: {}", known.join(", "))
            };
            return Err(Failure::new(
                "no key to act as",
                "this command signs with one of your keys",
            )
            .hint(format!("pass --as NAME ({keys})")));
        };
        let what = format!("cannot open key {name}");
        Keystore::validate_name(name).map_err(|e| Failure::keystore(&what, &e))?;
        if !keystore.contains(name) {
            // Say so before asking for a passphrase.
            let err = KeystoreError::UnknownName {
                name: name.clone(),
                dir: keystore.dir().to_path_buf(),
                known: keystore.list().unwrap_or_default(),
            };
            return Err(Failure::keystore(&what, &err));
        }
        let pass = passphrase(&format!("Passphrase for key {name}: "), false)?;
        keystore
            .load(name, &pass)
            .map_err(|e| Failure::keystore(&what, &e))
    }

    /// The replica set `--node` names, checked against what rr trusts: a
    /// cluster.json names its replicas' keys; a dev node's URL is pinned to
    /// the key it presents the first time (and refused if that changes).
    /// Starts from the newest height rr saw of that set before.
    async fn connect(
        &self,
        keystore: &Keystore,
        identity: Option<RootIdentity>,
    ) -> Result<Session, Failure> {
        let what = format!("cannot use node {}", self.node);
        let dir = keystore.dir();
        let cluster_file = Path::new(&self.node);
        if !self.node.contains("://") && cluster_file.exists() {
            let replicas =
                Replicas::from_cluster_file(cluster_file).map_err(self.fail_node(&what))?;
            let seen = trust::seen(dir, &replicas.replica_set().digest())?;
            return Ok(Session {
                replicas: replicas.with_seen(seen),
                identity,
                info: None,
                anchor: Anchor::Cluster {
                    file: cluster_file.to_path_buf(),
                },
            });
        }
        let http = rr_node::http::HttpClient::new(&self.node).map_err(self.fail_node(&what))?;
        // Not believed as such: it only says which key to pin (or to
        // compare with the pinned one), and whether this is a dev node.
        let info = http.info().await.map_err(self.fail_node(&what))?;
        let url = trust::normalize_url(&self.node);
        let set = &info.replica_set;
        if set.n() != 1 {
            return Err(Failure::new(
                &what,
                format!(
                    "{url} is replica {} of a cluster of {}: rr checks every answer against all the replicas' keys, which the cluster's cluster.json names",
                    info.replica.0,
                    set.n()
                ),
            )
            .hint("point rr at the cluster's cluster.json: --node DIR/cluster.json or RR_NODE=DIR/cluster.json"));
        }
        let key = set.keys()[0];
        match trust::pin(dir, &url, &key)? {
            PinCheck::Known => {}
            PinCheck::New(file) => eprintln!(
                "note: first use of node {url}: pinned its key {key} in {}; rr refuses this URL if the key changes",
                file.display()
            ),
            PinCheck::Changed(pinned) => {
                return Err(Failure::new(
                    &what,
                    format!(
                        "it presents key {key}, but rr pinned key {} for {url} on {}: it is another node, or this node's key was replaced (a new data directory)",
                        pinned.key, pinned.first_seen
                    ),
                )
                .hint(format!(
                    "if you expect the change, run `rr trust forget {url}` and try again; otherwise do not use this node"
                )));
            }
        }
        let replicas = Replicas::single(Arc::new(http), key).map_err(self.fail_node(&what))?;
        let seen = trust::seen(dir, &replicas.replica_set().digest())?;
        Ok(Session {
            replicas: replicas.with_seen(seen),
            identity,
            info: Some(info),
            anchor: Anchor::Pinned { url, key },
        })
    }

    /// Keeps the newest height this run saw of the replica set (never
    /// lowering it), for the next run to hold the node to.
    fn remember_seen(&self, keystore: &Keystore, session: &Session) {
        let digest = session.replicas.replica_set().digest();
        if let Err(f) = trust::remember_seen(keystore.dir(), &digest, session.replicas.seen()) {
            eprintln!("note: {}", f.to_string().trim_start_matches("error: "));
        }
    }

    /// A failure because every answer was older than what rr saw before,
    /// told as such (the library says it as a transport failure).
    fn explain_stale(&self, failure: Failure, keystore: &Keystore, session: &Session) -> Failure {
        if !failure.why.contains("this client has seen") {
            return failure;
        }
        let seen_file = keystore.dir().join(trust::SEEN_FILE);
        let recover = match &session.anchor {
            Anchor::Pinned { url, .. } => format!(
                "if its ledger was rolled back on purpose, `rr trust forget {url}` makes rr forget what it saw"
            ),
            Anchor::Cluster { .. } => format!(
                "if the cluster's ledgers were rolled back on purpose, remove entry {} from {}",
                session.replicas.replica_set().digest(),
                seen_file.display()
            ),
        };
        let mut failure = failure;
        failure.why = format!("refused a stale answer: {}", failure.why);
        failure.hint(format!(
            "rr saw height {} of this ledger before (kept in {}) and never believes an older state: the node lost blocks (restored from an old copy?) or is cut off from the others; try again once it has caught up; {recover}",
            session.replicas.seen(),
            seen_file.display()
        ))
    }

    /// The client of `scheme` (a record's, or the one a new record uses).
    fn client(
        &self,
        session: &Session,
        scheme: SchemeId,
        what: &str,
    ) -> Result<AnyClient, Failure> {
        let me = session.me()?;
        let client = match scheme {
            SchemeId::UMBRAL => session.typed(me, Umbral).map(AnyClient::Umbral),
            SchemeId::RECRYPT => session.typed(me, Recrypt).map(AnyClient::Recrypt),
            other => {
                return Err(Failure::new(
                    what,
                    format!(
                        "scheme {other} is not one this rr can use (it uses {})",
                        scheme_names(CLIENT_SCHEMES)
                    ),
                )
                .hint("use an rr built with that scheme"))
            }
        };
        client.map_err(self.fail(what))
    }

    /// A client for what only the account key signs (revocations, audit
    /// trails, listings): no PRE key is involved, so any scheme's does.
    fn signer(&self, session: &Session, what: &str) -> Result<AnyClient, Failure> {
        let scheme = session.me()?.schemes()[0];
        self.client(session, scheme, what)
    }

    fn fail(&self, what: impl Into<String>) -> impl FnOnce(ClientError) -> Failure + '_ {
        let what = what.into();
        move |e| Failure::client(what, &e, &self.node)
    }

    fn fail_node(&self, what: impl Into<String>) -> impl FnOnce(NodeError) -> Failure + '_ {
        let what = what.into();
        move |e| Failure::client(what, &ClientError::Node(e), &self.node)
    }

    async fn remote(&self, command: Command) -> Result<(), Failure> {
        // Check what can be checked locally before the passphrase and the network.
        match &command {
            Command::Put { file, .. } => {
                let meta = std::fs::metadata(file).map_err(|e| {
                    Failure::new(format!("cannot read {}", file.display()), e)
                        .hint("check the path")
                })?;
                if !meta.is_file() {
                    return Err(Failure::new(
                        format!("cannot put {}", file.display()),
                        "it is not a regular file",
                    )
                    .hint("pass one file; put each file of a directory separately"));
                }
            }
            Command::Get { output, .. }
            | Command::Receipt(ReceiptCommand::Export { output, .. }) => {
                let dir = output
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new("."));
                if !dir.is_dir() {
                    return Err(Failure::new(
                        format!("cannot write {}", output.display()),
                        format!("directory {} does not exist", dir.display()),
                    )
                    .hint("create it or choose another output path"));
                }
                if output.is_dir() {
                    return Err(Failure::new(
                        format!("cannot write {}", output.display()),
                        "it is a directory",
                    )
                    .hint("give a file name with -o"));
                }
            }
            _ => {}
        }
        let keystore = self.keystore()?;
        let grantee = match &command {
            Command::Grant { to, .. } => Some(self.resolve_grantee(to, &keystore)?),
            _ => None,
        };
        // Anyone may export a grant's or a transaction's receipt: a key is
        // needed only for a record's (its owner's).
        let exporting = matches!(command, Command::Receipt(ReceiptCommand::Export { .. }));
        let identity = if exporting && self.as_name.is_none() {
            None
        } else {
            Some(self.identity(&keystore)?)
        };
        let session = self.connect(&keystore, identity).await?;
        let result = self.dispatch(&session, &keystore, command, grantee).await;
        // Even after a failure: what was seen was checked.
        self.remember_seen(&keystore, &session);
        result.map_err(|f| self.explain_stale(f, &keystore, &session))
    }

    async fn dispatch(
        &self,
        session: &Session,
        keystore: &Keystore,
        command: Command,
        grantee: Option<PublicCard>,
    ) -> Result<(), Failure> {
        match command {
            Command::Keys(_)
            | Command::Trust(_)
            | Command::Receipt(ReceiptCommand::Verify { .. }) => {
                unreachable!("run locally")
            }
            Command::Receipt(ReceiptCommand::Export { id, output }) => {
                self.export(session, id, &output).await
            }
            Command::Put {
                file,
                media_type,
                scheme,
            } => self.put(session, &file, &media_type, scheme).await,
            Command::Grant {
                record,
                expires,
                purpose,
                threshold,
                ..
            } => {
                let card = grantee.expect("resolved above");
                self.grant(
                    session,
                    RecordId(record),
                    &card,
                    expires,
                    purpose,
                    threshold,
                )
                .await
            }
            Command::Get {
                id,
                output,
                purpose,
            } => self.get(session, id, &output, purpose).await,
            Command::Revoke { grant } => self.revoke(session, GrantId(grant)).await,
            Command::Ls => self.ls(session, keystore).await,
            Command::Redeliver => self.redeliver(session, keystore).await,
            Command::Audit { record } => self.audit(session, RecordId(record), keystore).await,
        }
    }

    /// A grantee's card: a local key's name, a card file, or (with a clear
    /// refusal) a bare account id.
    fn resolve_grantee(&self, to: &str, keystore: &Keystore) -> Result<PublicCard, Failure> {
        let what = format!("cannot grant to {to}");
        if keystore.contains(to) {
            return keystore
                .public_card(to)
                .map_err(|e| Failure::keystore(&what, &e));
        }
        let path = Path::new(to);
        if path.is_file() {
            let bytes = std::fs::read(path).map_err(|e| Failure::new(&what, e))?;
            let card = serde_json::from_slice::<PublicCard>(&bytes).map_err(|e| {
                Failure::new(
                    &what,
                    format!("{} is not a public card ({e})", path.display()),
                )
                .hint("make one with `rr keys show NAME --json > NAME.card.json`")
            })?;
            // Before the passphrase and the network: a card whose keys its
            // account did not sign could carry someone else's.
            card.verify().map_err(self.fail(&what))?;
            return Ok(card);
        }
        if let Ok(account) = AccountId::from_hex(to) {
            if let Some(card) = keystore
                .list()
                .unwrap_or_default()
                .iter()
                .filter_map(|n| keystore.public_card(n).ok())
                .find(|c| c.account == account)
            {
                return Ok(card);
            }
            return Err(Failure::new(
                &what,
                "an account id alone is not enough: a grant re-encrypts to the grantee's PRE public key, which their public card holds",
            )
            .hint("ask the grantee for their card (`rr keys show NAME --json > NAME.card.json`) and pass the file with --to"));
        }
        Err(Failure::new(
            &what,
            format!(
                "there is no file {to} and no key named {to} in {}",
                keystore.dir().display()
            ),
        )
        .hint(
            "pass a public card file from `rr keys show NAME --json`, or the name of a local key",
        ))
    }

    async fn put(
        &self,
        session: &Session,
        file: &Path,
        media_type: &str,
        scheme: Option<SchemeId>,
    ) -> Result<(), Failure> {
        let what = format!("cannot put {}", file.display());
        let f = std::fs::File::open(file)
            .map_err(|e| Failure::new(&what, e).hint("check the path and its permissions"))?;
        let size = f.metadata().map_err(|e| Failure::new(&what, e))?.len();
        let scheme = match (scheme, &session.info) {
            (Some(scheme), _) => scheme,
            (None, Some(info)) => info.scheme,
            (None, None) => {
                session
                    .replicas
                    .info()
                    .await
                    .map_err(self.fail_node(&what))?
                    .scheme
            }
        };
        let client = self.client(session, scheme, &what)?;
        let bar = progress::bar(
            progress::wanted(self.json),
            size,
            "encrypting and uploading",
        );
        // Read and encrypted on a thread of its own, ahead of the upload.
        // Without a bar the file goes in as it is: std reads a `File` into
        // uninitialised memory, while any wrapper costs a memset per chunk
        // (6% of a 1 GiB put's CPU).
        let out = match &bar {
            None => with_client!(&client, c => c.put_reader(f, media_type).await),
            Some(bar) => {
                let reader = progress::track_read(f, bar.clone());
                with_client!(&client, c => c.put_reader(reader, media_type).await)
            }
        }
        .map_err(self.fail(&what))?;
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        if self.json {
            print_json(&json!({
                "record_id": out.record_id.to_string(),
                "cid": out.cid.to_string(),
                "size": out.size,
                "plaintext_size": size,
                "scheme": scheme.name(),
                "tx": out.tx.to_string(),
                "certified_at": out.certified_at,
            }));
        } else {
            println!("registered record {} ({})", out.record_id, scheme.name());
            println!(
                "{size} bytes, encrypted to {} bytes, cid {}",
                out.size, out.cid
            );
            println!(
                "certified at height {}, transaction {}",
                out.certified_at, out.tx
            );
        }
        Ok(())
    }

    async fn grant(
        &self,
        session: &Session,
        record: RecordId,
        card: &PublicCard,
        expires: Option<Duration>,
        purpose: Purpose,
        threshold: Option<u16>,
    ) -> Result<(), Failure> {
        let what = format!("cannot grant access to record {}…", record.short());
        let expires_at = expires.map(|d| now().plus_millis(d.as_millis() as u64));
        let info = self.certified_record(session, record, &what).await?;
        let client = self.client(session, info.scheme, &what)?;
        let options = GrantOptions {
            purpose: purpose.clone(),
            expires_at,
            threshold,
        };
        let report = with_client!(&client, c => c.grant_with_report(record, card, options).await)
            .map_err(self.fail(&what))?;
        let grant = report.grant;
        // A replica that was down gets its (sealed) fragment later.
        let keystore = self.keystore()?;
        for p in &report.pending {
            let path = keep_pending(&keystore, p)?;
            if !self.json {
                eprintln!(
                    "note: replica {} did not take its key fragment ({}); it is kept in {}; run `rr redeliver` once the replica is back",
                    p.replica.0,
                    p.reason,
                    path.display()
                );
            }
        }
        if self.json {
            print_json(&json!({
                "pending_replicas": report.pending.iter().map(|p| p.replica.0).collect::<Vec<_>>(),
                "grant_id": grant.to_string(),
                "record_id": record.to_string(),
                "grantee": card.account.to_string(),
                "scheme": info.scheme.name(),
                "purpose": purpose.as_str(),
                "expires_at": expires_at.map(|t| t.to_string()),
                "tx": report.tx.to_string(),
                "certified_at": report.certified_at,
            }));
        } else {
            println!("granted {} access to record {record}", card.account);
            println!("grant id {grant}");
            match expires_at {
                Some(t) => println!("purpose {purpose}, expires {t}"),
                None => println!("purpose {purpose}, until revoked"),
            }
            println!(
                "certified at height {}, transaction {}",
                report.certified_at, report.tx
            );
            println!("keep a receipt of it: rr receipt export {grant} -o grant.receipt.json");
        }
        Ok(())
    }

    /// A record from certified state; proven absent is told as unknown.
    async fn certified_record(
        &self,
        session: &Session,
        record: RecordId,
        what: &str,
    ) -> Result<RecordInfo, Failure> {
        let auth = session.authorize(Authorization::record_scope(&record))?;
        session
            .replicas
            .record(record, auth)
            .await
            .map_err(self.fail_node(what))?
            .value
            .ok_or_else(|| self.fail_node(what)(NodeError::UnknownRecord(record)))
    }

    async fn get(
        &self,
        session: &Session,
        id: [u8; 32],
        output: &Path,
        purpose: Option<Purpose>,
    ) -> Result<(), Failure> {
        let me = session.account()?;
        let replicas = &session.replicas;
        let what_id = format!("cannot read {}", hex::encode(id));
        // The record, and the grant to read it through (none for the owner),
        // from certified state.
        let auth = session.authorize(Authorization::record_scope(&RecordId(id)))?;
        let as_record = not_found_as_none(replicas.record(RecordId(id), auth).await)
            .map_err(self.fail_node(&what_id))?
            .and_then(|v| v.value);
        let (what, record, grant): (String, RecordInfo, Option<(GrantId, Purpose)>) =
            match as_record {
                Some(info) if info.owner == me => {
                    let what = format!("cannot read record {}…", info.id.short());
                    (what, info, None)
                }
                Some(info) => {
                    let what = format!("cannot read record {}…", info.id.short());
                    let grant = self.held_grant(session, &info, &what).await?;
                    let purpose = purpose.unwrap_or_else(|| grant.purpose.clone());
                    (what, info, Some((grant.id, purpose)))
                }
                None => {
                    let what = format!("cannot read through grant {}…", GrantId(id).short());
                    let auth = session.authorize(Authorization::grant_scope(&GrantId(id)))?;
                    let Some(grant) = not_found_as_none(replicas.grant(GrantId(id), auth).await)
                        .map_err(self.fail_node(&what))?
                        .and_then(|v| v.value)
                    else {
                        return Err(Failure::new(
                            what_id,
                            format!(
                                "node {} has no record and no grant with this id that account {me} may read",
                                self.node
                            ),
                        )
                        .hint("check the id; `rr --as NAME ls` lists your records and grants"));
                    };
                    let info = self.certified_record(session, grant.record, &what).await?;
                    if grant.owner == me && grant.grantee != me {
                        // The owner needs no grant to read their own record.
                        (what, info, None)
                    } else {
                        let purpose = purpose.unwrap_or_else(|| grant.purpose.clone());
                        (what, info, Some((grant.id, purpose)))
                    }
                }
            };
        let grant_id = grant.as_ref().map(|(g, _)| *g);
        let client = self.client(session, record.scheme, &what)?;
        let (stream, report, tx) = match grant {
            None => {
                let stream = with_client!(&client, c => c.read_own(record.id).await)
                    .map_err(self.fail(&what))?;
                (stream, None, None)
            }
            Some((grant, purpose)) => {
                // Signed here, so the transaction id is known whatever the
                // outcome: a refusal is certified too, and can be exported.
                let call = Call::Retrieve(Retrieve { grant, purpose });
                let (tx, retrieved) = with_client!(&client, c => {
                    let signed = c.identity().sign(call);
                    (signed.id(), c.retrieve_signed(signed).await)
                });
                let (stream, report) = retrieved.map_err(|e| {
                    let refused = matches!(e, ClientError::Node(NodeError::Refused(_)));
                    let f = self.fail(&what)(e);
                    if !refused {
                        return f;
                    }
                    // The refusal is on the ledger: say how to keep proof of it.
                    let hint = f.hint.clone().map(|h| format!("{h}; ")).unwrap_or_default();
                    f.hint(format!(
                        "{hint}the refused call is transaction {tx}: `rr receipt export {tx} -o refusal.receipt.json` keeps its certified receipt"
                    ))
                })?;
                (stream, Some(report), Some(tx))
            }
        };
        // Replicas that were down or gave a bad fragment: named, not fatal.
        let report = report.unwrap_or_default();
        if !self.json {
            for s in &report.skipped {
                eprintln!("note: skipped replica {}: {}", s.replica.0, s.reason);
            }
        }
        let bar = progress::bar(
            progress::wanted(self.json),
            record.size,
            "downloading and decrypting",
        );
        let written = rr_node::write_stream_to_file(progress::track(stream, bar.clone()), output)
            .await
            .map_err(self.fail(&what))?;
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        if self.json {
            print_json(&json!({
                "record_id": record.id.to_string(),
                "grant_id": grant_id.map(|g| g.to_string()),
                "scheme": record.scheme.name(),
                "output": output.display().to_string(),
                "bytes": written,
                "media_type": record.media_type,
                "tx": tx.map(|t| t.to_string()),
                "certified_at": tx.map(|_| report.certified_at),
                "certified_by": report.certified_by.iter().map(|r| r.0).collect::<Vec<_>>(),
                "replicas_used": report.used.iter().map(|r| r.0).collect::<Vec<_>>(),
                "replicas_skipped": report.skipped.iter().map(|s| json!({
                    "replica": s.replica.0,
                    "reason": s.reason,
                })).collect::<Vec<_>>(),
            }));
        } else {
            println!(
                "wrote {written} bytes of record {} to {}",
                record.id,
                output.display()
            );
            if let Some(tx) = tx {
                println!(
                    "retrieval certified at height {}, transaction {tx}",
                    report.certified_at
                );
            }
        }
        Ok(())
    }

    /// `rr receipt export ID -o FILE`: the certified state of a grant, a
    /// record with its whole audit trail (owner only), or a transaction's
    /// certified receipt, written as a self-contained receipt file.
    async fn export(&self, session: &Session, id: [u8; 32], output: &Path) -> Result<(), Failure> {
        let what = format!("cannot export a receipt for {}", hex::encode(id));
        let replicas = &session.replicas;
        let auth = session.authorize(Authorization::grant_scope(&GrantId(id)))?;
        let as_grant = not_found_as_none(replicas.grant(GrantId(id), auth).await)
            .map_err(self.fail_node(&what))?
            .filter(|g| g.value.is_some());
        let record_auth = session.authorize(Authorization::record_scope(&RecordId(id)))?;
        let proof = if let Some(as_grant) = as_grant {
            Proof::Grant {
                grant: GrantId(id),
                state: as_grant.answer,
            }
        } else if let Some(record) =
            not_found_as_none(replicas.record(RecordId(id), record_auth).await)
                .map_err(self.fail_node(&what))?
                .and_then(|v| v.value)
        {
            let what = format!(
                "cannot export the audit trail of record {}…",
                record.id.short()
            );
            let Some(me) = &session.identity else {
                return Err(Failure::new(
                    &what,
                    "a record's receipt holds its whole audit trail, which only its owner may read",
                )
                .hint("pass --as with the owner's key; the owner or the grantee can export a grant's receipt by its grant id"));
            };
            if record.owner != me.account() {
                return Err(Failure::new(
                    &what,
                    format!(
                        "account {} does not own record {}; only its owner can export its audit trail",
                        me.account(),
                        record.id
                    ),
                )
                .hint("use the owner's key with --as; a grantee can export the grant's receipt by its grant id"));
            }
            let signer = self.signer(session, &what)?;
            let trail = with_client!(&signer, c => c.audit_certified(record.id).await)
                .map_err(self.fail(&what))?;
            Proof::Record {
                record: record.id,
                state: trail.answer,
            }
        } else {
            let auth = session.authorize(Authorization::receipt_scope(&TxId(id)))?;
            match replicas.receipt(TxId(id), auth).await {
                Ok(submitted) => Proof::Transaction {
                    tx: TxId(id),
                    receipt: submitted.certified,
                },
                Err(e) => {
                    let unknown = matches!(e, NodeError::NotFound(_));
                    let why = if unknown {
                        format!(
                            "node {} has no grant, no record and no transaction with this id that this account may read (a record's owner and grantees, a grant's owner and grantee, a transaction's signer)",
                            self.node
                        )
                    } else {
                        format!("there is no grant and no record with this id, and looking for a transaction failed: {e}")
                    };
                    return Err(Failure::new(&what, why).hint(
                        "check the id: `rr put`, `rr grant`, `rr get` and `rr revoke` print their ids with --json",
                    ));
                }
            }
        };
        let file = ReceiptFile::new(replicas.replica_set().clone(), proof);
        let statement = file
            .verify(Some(replicas.replica_set()))
            .map_err(|e| Failure::new(&what, format!("the node's proof does not hold: {e}")))?;
        let bytes = file.to_json();
        receipt::write_atomically(output, &bytes)?;
        let verify_with = format!(
            "rr receipt verify {} {}",
            output.display(),
            session.verify_flag()
        );
        if self.json {
            let mut out = receipt::statement_json(&file, &statement);
            out["output"] = json!(output.display().to_string());
            out["bytes"] = json!(bytes.len());
            out["verify_with"] = json!(verify_with);
            print_json(&out);
        } else {
            println!(
                "wrote {} ({} receipt, {} bytes)",
                output.display(),
                receipt::kind(&file.proof),
                bytes.len()
            );
            println!("it proves: {}", receipt::headline(&statement));
            println!("check it anywhere, offline: {verify_with}");
        }
        Ok(())
    }

    /// The grant this client holds for someone else's record: an active one
    /// if any, else the latest (so the node says why it no longer works).
    async fn held_grant(
        &self,
        session: &Session,
        record: &RecordInfo,
        what: &str,
    ) -> Result<GrantInfo, Failure> {
        let signer = self.signer(session, what)?;
        let (_, held) = with_client!(&signer, c => c.listing().await).map_err(self.fail(what))?;
        let mut mine: Vec<GrantInfo> = held.into_iter().filter(|g| g.record == record.id).collect();
        mine.sort_by_key(|g| g.granted.height);
        let now = now();
        if let Some(g) = mine
            .iter()
            .rev()
            .find(|g| output::grant_state(g, now) == "active")
        {
            return Ok(g.clone());
        }
        mine.pop().ok_or_else(|| {
            Failure::new(
                what,
                format!(
                    "account {} holds no grant to this record, which account {} owns",
                    session.account().unwrap_or_default(),
                    record.owner
                ),
            )
            .hint("ask the record's owner for a grant, then pass its grant id or the record id")
        })
    }

    async fn revoke(&self, session: &Session, grant: GrantId) -> Result<(), Failure> {
        let what = format!("cannot revoke grant {}…", grant.short());
        let signer = self.signer(session, &what)?;
        let report =
            with_client!(&signer, c => c.revoke_with_report(grant, rr_node::ERASURE_WAIT).await)
                .map_err(self.fail(&what))?;
        let confirmed: Vec<u16> = report.confirmed_by.iter().map(|r| r.0).collect();
        if self.json {
            print_json(&json!({
                "grant_id": grant.to_string(),
                "revoked": true,
                "erasure_confirmed_by": confirmed,
                "erasures_needed": report.needed,
                "tx": report.tx.to_string(),
                "certified_at": report.certified_at,
            }));
        } else {
            if report.needed == 0 {
                println!("revoked grant {grant}; the node erased its key fragment");
            } else {
                println!(
                    "revoked grant {grant}; revocation complete: replicas {confirmed:?} confirmed on the ledger that they erased their key fragment ({} of the {} needed)",
                    confirmed.len(),
                    report.needed
                );
            }
            println!(
                "certified at height {}, transaction {}",
                report.certified_at, report.tx
            );
            println!("keep a receipt of it: rr receipt export {grant} -o revoked.receipt.json");
        }
        Ok(())
    }

    async fn redeliver(&self, session: &Session, keystore: &Keystore) -> Result<(), Failure> {
        let what = "cannot deliver the pending key fragments";
        let signer = self.signer(session, what)?;
        let dir = keystore.dir().join(PENDING_DIR);
        let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
            Ok(entries) => entries.flatten().map(|e| e.path()).collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(Failure::new(format!("cannot read {}", dir.display()), e)),
        };
        files.retain(|p| p.extension().is_some_and(|x| x == "json"));
        files.sort();
        let (mut delivered, mut dropped, mut left) = (Vec::new(), Vec::new(), Vec::new());
        for path in files {
            let pending: rr_node::PendingFragment = std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
                .map_err(|e| {
                    Failure::new(format!("cannot read {}", path.display()), e)
                        .hint("remove the file if it is not one rr grant wrote")
                })?;
            let entry =
                json!({ "grant_id": pending.grant.to_string(), "replica": pending.replica.0 });
            match with_client!(&signer, c => c.redeliver(&pending).await) {
                Ok(()) => {
                    let _ = std::fs::remove_file(&path);
                    delivered.push(entry);
                }
                Err(ClientError::Node(NodeError::Refused(r)))
                    if matches!(r.code, ErrorCode::GrantRevoked | ErrorCode::GrantExpired) =>
                {
                    // Nothing left to deliver for a grant that no longer works.
                    let _ = std::fs::remove_file(&path);
                    dropped.push(json!({ "grant_id": pending.grant.to_string(), "replica": pending.replica.0, "reason": r.message }));
                }
                Err(e) => left.push(json!({ "grant_id": pending.grant.to_string(), "replica": pending.replica.0, "error": e.to_string() })),
            }
        }
        if self.json {
            print_json(&json!({ "delivered": delivered, "dropped": dropped, "pending": left }));
        } else {
            for d in &delivered {
                println!(
                    "delivered grant {}'s key fragment to replica {}",
                    d["grant_id"].as_str().unwrap_or(""),
                    d["replica"]
                );
            }
            for d in &dropped {
                println!(
                    "dropped grant {}'s fragment for replica {}: {}",
                    d["grant_id"].as_str().unwrap_or(""),
                    d["replica"],
                    d["reason"].as_str().unwrap_or("")
                );
            }
            if delivered.is_empty() && dropped.is_empty() && left.is_empty() {
                println!("no key fragments are pending");
            }
        }
        if !left.is_empty() {
            return Err(Failure::new(
                what,
                format!(
                    "{} are still pending: {}",
                    left.len(),
                    left.iter()
                        .map(|l| l["error"].as_str().unwrap_or("").to_string())
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
            )
            .hint("run rr redeliver again once those replicas are up"));
        }
        Ok(())
    }

    async fn ls(&self, session: &Session, keystore: &Keystore) -> Result<(), Failure> {
        let what = "cannot list your records and grants";
        let signer = self.signer(session, what)?;
        let (records, held) =
            with_client!(&signer, c => c.listing().await).map_err(self.fail(what))?;
        let mut owned = Vec::with_capacity(records.len());
        for record in records {
            let grants = with_client!(&signer, c => c.grants_of(record.id).await)
                .map_err(self.fail(what))?;
            owned.push((record, grants));
        }
        let now = now();
        if self.json {
            print_json(&json!({
                "account": session.account()?.to_string(),
                "records": owned.iter().map(|(r, g)| output::record_json(r, g, now)).collect::<Vec<_>>(),
                "grants": held.iter().map(|g| output::grant_json(g, now)).collect::<Vec<_>>(),
            }));
            return Ok(());
        }
        let names = self.names(keystore);
        let who = |a: &AccountId| names.get(a).cloned().unwrap_or_else(|| a.short());
        println!("account {}", session.account()?);
        println!("records you own: {}", owned.len());
        for (r, grants) in &owned {
            println!(
                "  {}  {}  {} bytes  {}  registered {}",
                r.id,
                r.scheme.name(),
                r.size,
                r.media_type,
                r.registered.time
            );
            for g in grants {
                println!(
                    "    grant {}  to {}  purpose {}  {}",
                    g.id,
                    who(&g.grantee),
                    g.purpose,
                    describe_state(g, now)
                );
            }
        }
        println!("grants you hold: {}", held.len());
        for g in &held {
            println!(
                "  grant {}  record {}  from {}  purpose {}  {}",
                g.id,
                g.record,
                who(&g.owner),
                g.purpose,
                describe_state(g, now)
            );
        }
        Ok(())
    }

    async fn audit(
        &self,
        session: &Session,
        record: RecordId,
        keystore: &Keystore,
    ) -> Result<(), Failure> {
        let what = format!("cannot read the audit trail of record {}…", record.short());
        let signer = self.signer(session, &what)?;
        let trail = with_client!(&signer, c => c.audit_certified(record).await)
            .map_err(self.fail(&what))?;
        let entries = &trail.value;
        if self.json {
            print_json(&json!({
                "record_id": record.to_string(),
                "entries": entries.iter().map(output::audit_json).collect::<Vec<_>>(),
                "certified_at": trail.header.height(),
                "certified_by": trail.header.signers().iter().map(|r| r.0).collect::<Vec<_>>(),
            }));
            return Ok(());
        }
        let names = self.names(keystore);
        println!("audit trail of record {record}: {} entries", entries.len());
        for e in entries {
            let actor = names
                .get(&e.actor)
                .cloned()
                .unwrap_or_else(|| e.actor.short());
            println!("{}", output::audit_line(e, &actor));
        }
        Ok(())
    }
}

fn describe_state(g: &GrantInfo, now: Timestamp) -> String {
    match (output::grant_state(g, now), g.status) {
        (_, rr_core::GrantStatus::Revoked { at }) => {
            format!("revoked at height {} ({})", at.height, at.time)
        }
        ("expired", _) => format!(
            "expired {}",
            g.expires_at.map(|t| t.to_string()).unwrap_or_default()
        ),
        _ => match g.expires_at {
            Some(t) => format!("active until {t}"),
            None => "active until revoked".to_string(),
        },
    }
}

/// Where `rr grant` keeps fragments a replica did not take, under the keystore.
const PENDING_DIR: &str = "pending";

/// Writes `p` to the keystore's pending directory (0600); its path.
fn keep_pending(keystore: &Keystore, p: &rr_node::PendingFragment) -> Result<PathBuf, Failure> {
    let dir = keystore.dir().join(PENDING_DIR);
    let path = dir.join(format!("{}-{}.json", p.grant, p.replica.0));
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(&dir)?;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(&path)?;
        std::io::Write::write_all(&mut f, &serde_json::to_vec_pretty(p).expect("serializes"))?;
        f.sync_all()
    };
    write().map_err(|e| {
        Failure::new(
            format!("cannot keep the pending fragment in {}", path.display()),
            e,
        )
        .hint("the grant is on the ledger; check the keystore directory is writable")
    })?;
    Ok(path)
}

/// A read answered "unknown" (the id does not exist, or this account may
/// not see it: replicas answer both the same) as `None`.
fn not_found_as_none<T>(answer: Result<T, NodeError>) -> Result<Option<T>, NodeError> {
    match answer {
        Ok(v) => Ok(Some(v)),
        Err(e) if is_unknown(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether `e` says the id is unknown (to the account that asked).
fn is_unknown(e: &NodeError) -> bool {
    match e {
        NodeError::UnknownRecord(_) | NodeError::UnknownGrant(_) | NodeError::NotFound(_) => true,
        NodeError::Refused(r) => {
            matches!(r.code, ErrorCode::UnknownRecord | ErrorCode::UnknownGrant)
        }
        _ => false,
    }
}
