//! How the primary forms batches (`PbftConfig::max_batch_delay`): a call
//! that finds the pipeline idle is proposed at once; calls that arrive while
//! a batch is in flight gather into the next one, which goes when the
//! pipeline is idle again, when it is full, or when its oldest call has
//! waited the delay. With a delay of 0 every call starts a block of its own.
//!
//! The pure ordering cores on a scripted in-memory network
//! (`common::core_net`): deterministic, no clocks.

mod common;

use std::time::Duration;

use common::core_net::Net;
use common::{client, tx};
use rr_consensus::PbftConfig;
use rr_core::TxId;

fn config(delay_ms: u64) -> PbftConfig {
    {
        let mut config = PbftConfig::for_tests();
        config.max_batch = 3;
        config.max_batch_delay = Duration::from_millis(delay_ms);
        config
    }
}

/// Every replica has executed up to `height`.
fn all_at(net: &Net, height: u64) {
    for i in 0..common::core_net::N {
        assert_eq!(net.height(i), height, "replica {i}");
    }
}

/// The sizes of the proposed batches, in order.
fn batch_sizes(net: &Net) -> Vec<usize> {
    net.proposals.iter().map(|(_, _, txs)| txs.len()).collect()
}

#[test]
fn calls_arriving_while_a_batch_is_in_flight_gather_into_the_next() {
    let mut net = Net::new(config(20));
    let key = client(12);
    let calls: Vec<_> = (0..6).map(|n| tx(&key, n)).collect();
    // All six reach the primary before any vote on the first block does.
    for t in &calls {
        net.enqueue(0, t);
    }
    net.settle();
    // The first goes alone (the pipeline was idle); the next three fill a
    // batch (max 3), which goes at once because it is full; the last two
    // wait for the pipeline to drain, then go together.
    assert_eq!(batch_sizes(&net), vec![1, 3, 2]);
    let ordered: Vec<TxId> = net
        .proposals
        .iter()
        .flat_map(|(_, _, txs)| txs.clone())
        .collect();
    assert_eq!(
        ordered,
        calls.iter().map(|t| t.id()).collect::<Vec<_>>(),
        "in arrival order"
    );
    all_at(&net, 3);
}

#[test]
fn with_no_delay_every_call_that_finds_room_starts_a_block() {
    let mut net = Net::new(config(0));
    let key = client(13);
    for n in 0..6 {
        net.enqueue(0, &tx(&key, n));
    }
    net.settle();
    assert_eq!(batch_sizes(&net), vec![1; 6]);
    all_at(&net, 6);
}

#[test]
fn a_partial_batch_stuck_behind_a_block_goes_when_the_delay_has_passed() {
    let mut net = Net::new(config(20));
    let key = client(14);
    // Two backups are away: the first block cannot commit, so the pipeline
    // never drains.
    net.up[2] = false;
    net.up[3] = false;
    net.enqueue(0, &tx(&key, 0));
    net.enqueue(0, &tx(&key, 1));
    net.settle();
    assert_eq!(batch_sizes(&net), vec![1], "the second call waits");
    net.pass(10);
    assert_eq!(batch_sizes(&net), vec![1], "10 ms: still waiting");
    net.pass(20);
    assert_eq!(batch_sizes(&net), vec![1, 1], "past 20 ms: proposed");
    // Nothing commits without a quorum; once the backups are back, the
    // protocol's retransmissions finish both blocks.
    assert_eq!(net.height(0), 0);
    net.up[2] = true;
    net.up[3] = true;
    net.pass(200);
    all_at(&net, 2);
}
