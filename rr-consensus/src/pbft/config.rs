//! Settings of the PBFT engine.

use std::time::Duration;

use super::error::ConfigError;

/// Settings of one PBFT replica. Every replica of a cluster should use the
/// same values (the checkpoint interval and window must agree). Start from
/// [`PbftConfig::default`] and set the fields that differ.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct PbftConfig {
    /// Most transactions in one batch (block). Default 100, ResilientDB's.
    pub max_batch: usize,
    /// How long the primary lets a partial batch wait for more transactions
    /// while batches are in flight. With nothing in flight a batch is proposed
    /// at once, whatever its size, and a full batch never waits; so under
    /// moderate load calls gather while the previous batch is ordered, and
    /// under heavy load full batches fill the pipeline. Default 20 ms.
    ///
    /// With 0 every call that arrives while the pipeline has room starts a
    /// batch of its own: at moderate load that means many tiny blocks whose
    /// fixed costs (votes, signatures, fsyncs) swamp the machine. Measured on
    /// 2 cores at 4,000 tx/s offered (`pbft_bench --rate 4000`): p50 47–50 ms
    /// with 0, 20–27 ms with 10–30 ms, the same peak throughput.
    ///
    /// The delay is checked when the core handles input or ticks, so it is a
    /// bound on the wait only while traffic flows (it always does when a
    /// batch waits behind one in flight: that one's votes arrive).
    pub max_batch_delay: Duration,
    /// Most batches proposed and not yet executed at once. Default 16.
    pub max_inflight: u64,
    /// A checkpoint every this many sequence numbers. Default 64.
    pub checkpoint_interval: u64,
    /// Sequence numbers above the stable checkpoint a replica accepts (the
    /// high watermark is the low one plus this). At least twice the checkpoint
    /// interval. Default 256.
    pub window: u64,
    /// PBFT's request timer. When the oldest request a replica holds has
    /// waited this long, the replica sends the requests it holds to every
    /// replica (perhaps only it has them); when it has waited as long again
    /// and the primary made no progress meanwhile (no block proposed or
    /// executed), the replica suspects the primary and asks for a new view.
    /// A request left out for 8 times this while the primary orders others
    /// is taken for censorship and does the same. So a crashed primary is
    /// suspected 1 to 2 timeouts after the first call that finds it gone.
    /// Default 500 ms.
    ///
    /// Lower values replace a crashed primary sooner; a primary that is only
    /// slow (a long fsync, a loaded machine) is kept as long as it makes
    /// progress, so load alone does not cause view changes.
    pub request_timeout: Duration,
    /// How long a view change may take once a quorum (2f + 1) has asked for
    /// the new view, before the replicas give up on its primary and ask for
    /// the next view; doubles with each view in a row that fails (up to 32x).
    /// The timer starts at the quorum, not when this replica asked, so
    /// replicas that noticed the failure at different times do not race
    /// past a view its primary is about to start. Default 1 s.
    pub view_change_timeout: Duration,
    /// How far a block time set by the primary may be from this replica's
    /// clock. Default 30 s.
    pub max_clock_skew: Duration,
    /// How often a replica re-sends its votes for sequence numbers that are
    /// not yet decided. Default 500 ms.
    pub retransmit_interval: Duration,
    /// How often a replica tells the others where it stands (so laggards fetch
    /// blocks). Default 500 ms.
    pub status_interval: Duration,
    /// Client transactions that may wait for ordering at this replica; `submit`
    /// waits when the queue is full. Default 16384.
    pub queue_capacity: usize,
    /// Replica messages verified at once on the blocking pool. Default: the
    /// number of cores.
    pub verify_parallelism: usize,
    /// Run signature checks, write-ahead log appends and block execution on
    /// tokio's blocking pool, off the async threads. Default true.
    ///
    /// A deterministic simulation (turmoil) turns it off: on the blocking
    /// pool that work runs on threads of their own, outside simulated time,
    /// and finishes in an order no seed decides.
    pub offload_blocking: bool,
    /// How long `shutdown` keeps the replica running to finish the calls
    /// submitted here that may have been ordered (ones it forwarded,
    /// proposed or voted on) before it stops. Calls that never left this
    /// replica fail with `ConsensusError::Stopped` at once; the ones still
    /// undecided after this long fail with an error that says their outcome
    /// is unknown (resubmit the same signed call to learn it). Default 10 s.
    pub shutdown_drain: Duration,
}

impl Default for PbftConfig {
    fn default() -> Self {
        Self {
            max_batch: 100,
            max_batch_delay: Duration::from_millis(20),
            max_inflight: 16,
            checkpoint_interval: 64,
            window: 256,
            request_timeout: Duration::from_millis(500),
            view_change_timeout: Duration::from_secs(1),
            max_clock_skew: Duration::from_secs(30),
            retransmit_interval: Duration::from_millis(500),
            status_interval: Duration::from_millis(500),
            queue_capacity: 16 * 1024,
            verify_parallelism: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            offload_blocking: true,
            shutdown_drain: Duration::from_secs(10),
        }
    }
}

impl PbftConfig {
    /// Settings for tests and simulations: small timeouts, frequent
    /// checkpoints.
    pub fn for_tests() -> Self {
        Self {
            max_batch: 20,
            checkpoint_interval: 8,
            window: 32,
            max_inflight: 8,
            request_timeout: Duration::from_millis(100),
            view_change_timeout: Duration::from_millis(200),
            retransmit_interval: Duration::from_millis(50),
            status_interval: Duration::from_millis(50),
            ..Self::default()
        }
    }

    /// Checks the settings.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |m: String| Err(ConfigError(m));
        if self.max_batch == 0 || self.max_batch > super::message::MAX_BATCH_TXS {
            return err(format!(
                "max_batch must be between 1 and {}",
                super::message::MAX_BATCH_TXS
            ));
        }
        if self.checkpoint_interval == 0 {
            return err("checkpoint_interval must be at least 1".into());
        }
        if self.window > super::message::MAX_PREPARED_CERTS as u64 {
            return err(format!(
                "window ({}) must be at most {} (the most prepared certificates a view change carries)",
                self.window,
                super::message::MAX_PREPARED_CERTS
            ));
        }
        if self.window < 2 * self.checkpoint_interval {
            return err(format!(
                "window ({}) must be at least twice checkpoint_interval ({})",
                self.window, self.checkpoint_interval
            ));
        }
        if self.max_inflight == 0 || self.max_inflight > self.window {
            return err("max_inflight must be between 1 and the window".into());
        }
        if self.view_change_timeout.is_zero() || self.request_timeout.is_zero() {
            return err("request_timeout and view_change_timeout must not be zero".into());
        }
        if self.retransmit_interval.is_zero() || self.status_interval.is_zero() {
            return err("retransmit_interval and status_interval must not be zero".into());
        }
        if self.queue_capacity == 0 || self.verify_parallelism == 0 {
            return err("queue_capacity and verify_parallelism must be at least 1".into());
        }
        Ok(())
    }
}
