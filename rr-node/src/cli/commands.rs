//! The commands: keys, put, grant, get, revoke, ls, audit.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rr_core::{AccountId, ErrorCode, GrantId, GrantInfo, Purpose, RecordId, Timestamp};
use rr_node::keystore::{Keystore, KeystoreError};
use rr_node::{Client, ClientError, GrantOptions, Identity, NodeApi, NodeError, PublicCard};
use rr_pre::Umbral;
use serde_json::json;
use zeroize::Zeroizing;

use super::args::{Cli, Command, KeysCommand};
use super::fail::Failure;
use super::output::{self, print_json};
use super::progress;

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
        command => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
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
    if let Some(p) = std::env::var_os("RR_PASSPHRASE") {
        let p = p.into_string().map_err(|_| {
            Failure::new("cannot read RR_PASSPHRASE", "it is not valid UTF-8")
                .hint("set it to the passphrase as text")
        })?;
        if !p.is_empty() {
            return Ok(Zeroizing::new(p));
        }
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
                let identity = Identity::generate(&Umbral);
                let card = keystore
                    .create(&name, &pass, &identity, &Umbral)
                    .map_err(|e| Failure::keystore(&what, &e))?;
                let card_file = keystore.card_path(&name);
                if self.json {
                    print_json(&json!({
                        "name": name,
                        "account": card.account.to_string(),
                        "scheme": card.scheme,
                        "pre_public_key": card.pre_public_key,
                        "card_file": card_file.display().to_string(),
                    }));
                } else {
                    println!("created key {name}");
                    println!("account     {}", card.account);
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
                    println!("scheme         {}", card.scheme.name());
                    println!("pre_public_key {}", card.pre_public_key);
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
                            json!({"name": n, "account": c.as_ref().map(|c| c.account.to_string())})
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

    /// Opens the key named by `--as`.
    fn identity(&self, keystore: &Keystore) -> Result<Identity<Umbral>, Failure> {
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
            .load(name, &pass, &Umbral)
            .map_err(|e| Failure::keystore(&what, &e))
    }

    fn connect(&self, identity: Identity<Umbral>) -> Result<Client<Umbral>, Failure> {
        let api = rr_node::http::HttpClient::new(&self.node).map_err(|e| {
            Failure::client(
                format!("cannot use node {}", self.node),
                &ClientError::Node(e),
                &self.node,
            )
        })?;
        let api: Arc<dyn NodeApi> = Arc::new(api);
        Ok(Client::new(api, Arc::new(Umbral), identity))
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
            Command::Get { output, .. } => {
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
        let identity = self.identity(&keystore)?;
        let client = self.connect(identity)?;
        match command {
            Command::Keys(_) => unreachable!("keys commands run locally"),
            Command::Put { file, media_type } => self.put(&client, &file, &media_type).await,
            Command::Grant {
                record,
                expires,
                purpose,
                threshold,
                ..
            } => {
                let card = grantee.expect("resolved above");
                self.grant(
                    &client,
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
            } => self.get(&client, id, &output, purpose).await,
            Command::Revoke { grant } => self.revoke(&client, GrantId(grant)).await,
            Command::Ls => self.ls(&client, &keystore).await,
            Command::Audit { record } => self.audit(&client, RecordId(record), &keystore).await,
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
            return serde_json::from_slice::<PublicCard>(&bytes).map_err(|e| {
                Failure::new(
                    &what,
                    format!("{} is not a public card ({e})", path.display()),
                )
                .hint("make one with `rr keys show NAME --json > NAME.card.json`")
            });
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
        client: &Client<Umbral>,
        file: &Path,
        media_type: &str,
    ) -> Result<(), Failure> {
        let what = format!("cannot put {}", file.display());
        let f = tokio::fs::File::open(file)
            .await
            .map_err(|e| Failure::new(&what, e).hint("check the path and its permissions"))?;
        let size = f
            .metadata()
            .await
            .map_err(|e| Failure::new(&what, e))?
            .len();
        let stream: rr_core::ByteStream =
            Box::pin(tokio_util::io::ReaderStream::with_capacity(f, 256 * 1024));
        let bar = progress::bar(
            progress::wanted(self.json),
            size,
            "encrypting and uploading",
        );
        let out = client
            .put(progress::track(stream, bar.clone()), media_type)
            .await
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
            }));
        } else {
            println!("registered record {}", out.record_id);
            println!(
                "{size} bytes, encrypted to {} bytes, cid {}",
                out.size, out.cid
            );
        }
        Ok(())
    }

    async fn grant(
        &self,
        client: &Client<Umbral>,
        record: RecordId,
        card: &PublicCard,
        expires: Option<Duration>,
        purpose: Purpose,
        threshold: Option<u16>,
    ) -> Result<(), Failure> {
        let what = format!("cannot grant access to record {}…", record.short());
        let expires_at = expires.map(|d| now().plus_millis(d.as_millis() as u64));
        let grant = client
            .grant(
                record,
                card,
                GrantOptions {
                    purpose: purpose.clone(),
                    expires_at,
                    threshold,
                },
            )
            .await
            .map_err(self.fail(&what))?;
        if self.json {
            print_json(&json!({
                "grant_id": grant.to_string(),
                "record_id": record.to_string(),
                "grantee": card.account.to_string(),
                "purpose": purpose.as_str(),
                "expires_at": expires_at.map(|t| t.to_string()),
            }));
        } else {
            println!("granted {} access to record {record}", card.account);
            println!("grant id {grant}");
            match expires_at {
                Some(t) => println!("purpose {purpose}, expires {t}"),
                None => println!("purpose {purpose}, until revoked"),
            }
        }
        Ok(())
    }

    async fn get(
        &self,
        client: &Client<Umbral>,
        id: [u8; 32],
        output: &Path,
        purpose: Option<Purpose>,
    ) -> Result<(), Failure> {
        let me = client.account();
        let api = client.api().clone();
        let (what, record, grant, stream) = match api.record(RecordId(id)).await {
            Ok(info) if info.owner == me => {
                let what = format!("cannot read record {}…", info.id.short());
                let stream = client.read_own(info.id).await.map_err(self.fail(&what))?;
                (what, info, None, stream)
            }
            Ok(info) => {
                let what = format!("cannot read record {}…", info.id.short());
                let grant = self.held_grant(client, &info, &what).await?;
                let purpose = purpose.unwrap_or_else(|| grant.purpose.clone());
                let stream = client
                    .retrieve(grant.id, purpose)
                    .await
                    .map_err(self.fail(&what))?;
                (what, info, Some(grant.id), stream)
            }
            Err(e) if is_unknown(&e, ErrorCode::UnknownRecord) => {
                let what = format!("cannot read through grant {}…", GrantId(id).short());
                let grant = match api.grant(GrantId(id)).await {
                    Ok(g) => g,
                    Err(e) if is_unknown(&e, ErrorCode::UnknownGrant) => {
                        return Err(Failure::new(
                            format!("cannot read {}", hex::encode(id)),
                            format!("node {} has no record and no grant with this id", self.node),
                        )
                        .hint("check the id; `rr --as NAME ls` lists your records and grants"));
                    }
                    Err(e) => return Err(self.fail_node(&what)(e)),
                };
                let info = api
                    .record(grant.record)
                    .await
                    .map_err(self.fail_node(&what))?;
                if grant.owner == me && grant.grantee != me {
                    // The owner needs no grant to read their own record.
                    let stream = client.read_own(info.id).await.map_err(self.fail(&what))?;
                    (what, info, None, stream)
                } else {
                    let purpose = purpose.unwrap_or_else(|| grant.purpose.clone());
                    let stream = client
                        .retrieve(grant.id, purpose)
                        .await
                        .map_err(self.fail(&what))?;
                    (what, info, Some(grant.id), stream)
                }
            }
            Err(e) => {
                return Err(self.fail_node(format!("cannot read {}", hex::encode(id)))(
                    e,
                ));
            }
        };
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
                "grant_id": grant.map(|g| g.to_string()),
                "output": output.display().to_string(),
                "bytes": written,
                "media_type": record.media_type,
            }));
        } else {
            println!(
                "wrote {written} bytes of record {} to {}",
                record.id,
                output.display()
            );
        }
        Ok(())
    }

    /// The grant this client holds for someone else's record: an active one
    /// if any, else the latest (so the node says why it no longer works).
    async fn held_grant(
        &self,
        client: &Client<Umbral>,
        record: &rr_core::RecordInfo,
        what: &str,
    ) -> Result<GrantInfo, Failure> {
        let (_, held) = client.listing().await.map_err(self.fail(what))?;
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
                    client.account(),
                    record.owner
                ),
            )
            .hint("ask the record's owner for a grant, then pass its grant id or the record id")
        })
    }

    async fn revoke(&self, client: &Client<Umbral>, grant: GrantId) -> Result<(), Failure> {
        client
            .revoke(grant)
            .await
            .map_err(self.fail(format!("cannot revoke grant {}…", grant.short())))?;
        if self.json {
            print_json(&json!({ "grant_id": grant.to_string(), "revoked": true }));
        } else {
            println!("revoked grant {grant}; the node erased its key fragment");
        }
        Ok(())
    }

    async fn ls(&self, client: &Client<Umbral>, keystore: &Keystore) -> Result<(), Failure> {
        let what = "cannot list your records and grants";
        let (records, held) = client.listing().await.map_err(self.fail(what))?;
        let mut owned = Vec::with_capacity(records.len());
        for record in records {
            let grants = client.grants_of(record.id).await.map_err(self.fail(what))?;
            owned.push((record, grants));
        }
        let now = now();
        if self.json {
            print_json(&json!({
                "account": client.account().to_string(),
                "records": owned.iter().map(|(r, g)| output::record_json(r, g, now)).collect::<Vec<_>>(),
                "grants": held.iter().map(|g| output::grant_json(g, now)).collect::<Vec<_>>(),
            }));
            return Ok(());
        }
        let names = self.names(keystore);
        let who = |a: &AccountId| names.get(a).cloned().unwrap_or_else(|| a.short());
        println!("account {}", client.account());
        println!("records you own: {}", owned.len());
        for (r, grants) in &owned {
            println!(
                "  {}  {} bytes  {}  registered {}",
                r.id, r.size, r.media_type, r.registered.time
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
        client: &Client<Umbral>,
        record: RecordId,
        keystore: &Keystore,
    ) -> Result<(), Failure> {
        let entries = client.audit(record).await.map_err(self.fail(format!(
            "cannot read the audit trail of record {}…",
            record.short()
        )))?;
        if self.json {
            print_json(&json!({
                "record_id": record.to_string(),
                "entries": entries.iter().map(output::audit_json).collect::<Vec<_>>(),
            }));
            return Ok(());
        }
        let names = self.names(keystore);
        println!("audit trail of record {record}: {} entries", entries.len());
        for e in &entries {
            let actor = names
                .get(&e.actor)
                .cloned()
                .unwrap_or_else(|| e.actor.short());
            println!("{}", output::audit_line(e, &actor));
        }
        Ok(())
    }
}

/// Whether `e` says the record or grant does not exist (in process, the
/// node says it with its own variants; over HTTP, with the stable code).
fn is_unknown(e: &NodeError, code: ErrorCode) -> bool {
    match e {
        NodeError::UnknownRecord(_) => code == ErrorCode::UnknownRecord,
        NodeError::UnknownGrant(_) => code == ErrorCode::UnknownGrant,
        NodeError::Refused(r) => r.code == code,
        _ => false,
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
