//! A replica that is behind catches up by state transfer even when the peer
//! it hears from first cannot serve it.
//!
//! Found by the turmoil seed sweep (`sim_seed_sweep`, seed 5075): with no new
//! calls coming, a replica stood at the stable checkpoint (32) while the
//! others stood at 37. It asked for blocks the peer whose status reached it
//! first, every time (the status timers were in lockstep), and that peer had
//! restarted: it no longer held commit certificates for the blocks above its
//! checkpoint, so it had nothing it could prove and answered nothing. The
//! replica never asked anyone else.
//!
//! Here the pure ordering cores run on a scripted in-memory network
//! (`common::core_net`).

mod common;

use common::core_net::Net;
use common::{client, tx};
use rr_consensus::PbftConfig;

#[test]
fn a_laggard_asks_another_peer_when_one_cannot_serve() {
    let mut net = Net::new({
        let mut config = PbftConfig::for_tests();
        config.checkpoint_interval = 4;
        config.window = 8;
        config
    });
    let key = client(65);

    // Replica 3 is cut off while six blocks commit (the checkpoint at 4 is
    // stable, 5 and 6 are proven by commit certificates only).
    net.up[3] = false;
    for n in 0..6 {
        net.request(&[0], &tx(&key, n));
        net.pass(20);
    }
    net.pass(200);
    for i in 0..3 {
        assert_eq!(net.height(i), 6, "replica {i}");
    }

    // Replicas 0 and 2 restart: their certificates for 5 and 6 are gone, only
    // replica 1 can prove those blocks. They restart 10 ms before a status
    // round, so all three send their status in the same ticks (0's first).
    net.pass(20);
    net.restart(0);
    net.restart(2);
    net.up[3] = true;
    let mut waited = 0;
    while net.height(3) < 6 {
        assert!(
            waited < 5_000,
            "replica 3 stuck at {} of 6; state transfer replies (server, to, from, upto): {:?}",
            net.height(3),
            net.served
        );
        net.pass(100);
        waited += 100;
    }
    for h in 1..=6 {
        assert_eq!(net.blocks[3][&h], net.blocks[1][&h], "block {h}");
    }
}
