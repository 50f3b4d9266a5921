//! The `rr` command-line client: argument parsing, the commands, and how
//! failures are told. Compiled into the `rr` binary only (through `#[path]`
//! in `src/bin/rr.rs`), so the library never depends on CLI parsing.

pub mod args;
pub mod commands;
pub mod fail;
pub mod output;
pub mod progress;
pub mod receipt;
pub mod trust;

pub use args::Cli;
