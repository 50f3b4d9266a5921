//! A new primary that is behind the stable checkpoint must not order again
//! the requests the blocks below it already hold.
//!
//! Found by the turmoil seed sweep (`sim_seed_sweep`, `RR_SIM_CALLS=150`, seed
//! 1115): a replica restarted from its ledger at height 15 became primary of a
//! view whose checkpoint was at 16, and proposed at 23 a call that block 16
//! held, because a view change marks every pending request unproposed and the
//! replica had not executed block 16 yet. The call was committed twice.
//!
//! Here the pure ordering cores run on a scripted in-memory network
//! (`common::core_net`), so the scenario is exact: replica 1 is cut off while the others commit call X
//! (which replica 1 also holds) and pass a checkpoint; then the primary dies,
//! replica 1 comes back and becomes the primary of view 1.

mod common;

use common::core_net::Net;
use common::{client, tx};
use rr_consensus::PbftConfig;

#[test]
fn a_new_primary_behind_the_checkpoint_does_not_reorder_committed_calls() {
    let key = client(35);
    let (x, z, y) = (tx(&key, 0), tx(&key, 1), tx(&key, 2));
    let mut net = Net::new({
        let mut config = PbftConfig::for_tests();
        config.checkpoint_interval = 2;
        config.window = 4;
        config.max_inflight = 4;
        config
    });

    // Replica 1 is cut off; it holds X, which the others commit at height 1,
    // and a second block makes height 2 a stable checkpoint.
    net.up[1] = false;
    net.request(&[0, 1], &x);
    net.request(&[0], &z);
    net.pass(50);
    for i in [0, 2, 3] {
        assert_eq!(net.height(i), 2, "replica {i}");
    }
    assert_eq!(net.height(1), 0);

    // The primary dies; replica 1 is back, but the blocks it asks for do not
    // reach it before it is the primary of view 1.
    net.up[0] = false;
    net.up[1] = true;
    net.serve = false;
    net.request(&[1, 2, 3], &y);
    net.pass(1000);
    assert!(net.replicas[1].view() >= 1);
    net.serve = true;
    let mut waited = 0;
    while [1, 2, 3].iter().any(|i| net.height(*i) < 3) {
        assert!(waited < 10_000, "Y not committed: heights {:?}", net.heads);
        net.pass(100);
        waited += 100;
    }

    // X was ordered once, at 1, and never again.
    let again: Vec<_> = net
        .proposals
        .iter()
        .filter(|(_, seq, txs)| *seq != 1 && txs.contains(&x.id()))
        .collect();
    assert!(again.is_empty(), "X proposed again: {again:?}");
    for i in [1, 2, 3] {
        let with_x: Vec<u64> = net.blocks[i]
            .iter()
            .filter(|(_, b)| b.txs.iter().any(|t| t.id() == x.id()))
            .map(|(h, _)| *h)
            .collect();
        assert_eq!(with_x, [1], "replica {i} holds X at heights {with_x:?}");
    }
}
