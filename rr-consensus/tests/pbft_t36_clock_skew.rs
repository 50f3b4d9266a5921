//! Block times and wrong clocks. The primary sets each block's time, and a
//! backup accepts a block only if its time is within `max_clock_skew` (30 s
//! by default) of its own clock. A clock off by less than that changes
//! nothing; a backup whose clock is off by more refuses the blocks, but does
//! not take itself out of the view with a view change of its own: it
//! follows the others by state transfer. A primary whose clock is off by
//! more is replaced, since every replica with a good clock refuses it.
//!
//! Issue 13: a replica back from a pause judged an old pre-prepare against
//! its jumped clock and started a view change nobody joined.

mod common;

use common::core_net::{Net, N};
use common::{client, tx};
use rr_consensus::PbftConfig;

fn submit(net: &mut Net, key: u8, nonces: std::ops::Range<u64>) {
    let key = client(key);
    for n in nonces {
        net.request(&[0, 1, 2, 3], &tx(&key, n));
    }
}

fn heights(net: &Net) -> Vec<u64> {
    (0..N).map(|i| net.height(i)).collect()
}

fn views(net: &Net) -> Vec<u64> {
    (0..N).map(|i| net.replicas[i].view()).collect()
}

#[test]
fn a_clock_off_by_less_than_the_bound_changes_nothing() {
    let mut net = Net::new(PbftConfig::default());
    net.skew_ms[2] = 20_000;
    net.skew_ms[3] = -20_000;
    submit(&mut net, 36, 0..20);
    net.pass(3_000);
    let h = heights(&net);
    assert!(h[0] >= 1 && h.iter().all(|x| *x == h[0]), "{h:?}");
    assert_eq!(views(&net), [0, 0, 0, 0]);
    // Every replica ordered the blocks itself: nobody needed state transfer.
    assert!(net.served.is_empty(), "{:?}", net.served);
}

#[test]
fn a_backup_whose_clock_is_off_follows_by_state_transfer_and_changes_no_view() {
    let mut net = Net::new(PbftConfig::default());
    net.skew_ms[3] = 60_000;
    for round in 0..5 {
        submit(&mut net, 37, 10 * round..10 * round + 10);
        net.pass(2_000);
    }
    let h = heights(&net);
    assert!(h[0] >= 5, "{h:?}");
    assert!(
        h.iter().all(|x| *x == h[0]),
        "replica 3 did not keep up: {h:?}"
    );
    assert_eq!(views(&net), [0, 0, 0, 0]);
    assert_eq!(net.replicas[3].changing_to(), None);
    assert!(
        net.served.iter().any(|(_, to, _, _)| *to == 3),
        "replica 3 refused no block"
    );
}

#[test]
fn a_primary_whose_clock_is_off_is_replaced() {
    let mut net = Net::new(PbftConfig::default());
    net.skew_ms[0] = -60_000;
    submit(&mut net, 38, 0..10);
    let took = net
        .pass_until(10_000, |net| (1..N).all(|i| net.height(i) >= 1))
        .unwrap_or_else(|| {
            panic!(
                "nothing ordered: {:?} in views {:?}",
                heights(&net),
                views(&net)
            )
        });
    assert!(took < 3_000, "ordering waited {took} ms (simulated)");
    for i in 1..N {
        assert_eq!(net.replicas[i].view(), 1, "replica {i}");
    }
    // The old primary, now a backup with a wrong clock, follows.
    submit(&mut net, 38, 10..20);
    net.pass(3_000);
    let h = heights(&net);
    assert!(h.iter().all(|x| *x == h[1]), "{h:?}");
}
