//! `rr`: the Resilient Records command-line client.
//!
//! ```text
//! rr keys new NAME
//! rr keys show NAME --json
//! rr --as NAME put FILE [--scheme umbral|recrypt] --json
//! rr --as NAME grant RECORD --to GRANTEE [--expires 30d] [--purpose treatment] --json
//! rr --as NAME get RECORD -o FILE
//! rr --as NAME revoke GRANT
//! rr --as NAME ls --json
//! rr --as NAME audit RECORD --json
//! rr [--as NAME] receipt export ID -o FILE [--json]
//! rr receipt verify FILE [--cluster cluster.json | --key HEX] [--json]
//! rr trust list
//! rr trust forget URL
//! ```
//!
//! Every answer rr acts on is certified by the replica set it trusts: the
//! keys a cluster's `cluster.json` names, or a dev node's key, pinned the
//! first time rr uses its URL (`known_nodes.json` in the keystore directory;
//! a node presenting another key is refused until `rr trust forget URL`).
//! rr keeps the newest certified height it saw (`seen.json`) and refuses
//! older answers. `rr receipt export` writes a grant's state, a record's
//! whole audit trail (its owner only) or a transaction's outcome as a
//! self-contained proof that `rr receipt verify` checks offline.
//!
//! Exits 0 only on success; every failure prints one line on stderr saying
//! what failed, why, and what to do.

use std::process::ExitCode;

use clap::Parser;

#[path = "../cli/mod.rs"]
mod cli;

#[path = "../malloc_tuning.rs"]
mod malloc_tuning;

fn main() -> ExitCode {
    malloc_tuning::tune();
    // Out of the environment before any other thread starts (see
    // take_env_secret); the value is kept for when it is needed.
    let _ = rr_node::keystore::take_env_secret("RR_PASSPHRASE");
    let parsed = match cli::Cli::try_parse() {
        Ok(parsed) => parsed,
        Err(err) => {
            use clap::error::ErrorKind;
            return match err.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                    let _ = err.print();
                    ExitCode::SUCCESS
                }
                ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    let _ = err.print();
                    ExitCode::from(2)
                }
                _ => {
                    let failure = cli::fail::from_clap(&err);
                    eprintln!("{failure}");
                    ExitCode::from(failure.exit_code)
                }
            };
        }
    };
    match cli::commands::run(parsed) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("{failure}");
            ExitCode::from(failure.exit_code)
        }
    }
}
