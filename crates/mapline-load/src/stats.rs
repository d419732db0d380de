//! Latency and delivery accounting. Pure: what each client sent, received and ended with in,
//! figures out.

use std::collections::HashSet;

/// Percentiles of delivery latency, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Percentiles {
    pub count: usize,
    pub p50: u64,
    pub p95: u64,
    pub p99: u64,
    pub max: u64,
}

/// Nearest-rank percentiles (the smallest sample with at least `p` of all at or below it).
pub fn percentiles(samples: &mut [u64]) -> Percentiles {
    if samples.is_empty() {
        return Percentiles::default();
    }
    samples.sort_unstable();
    let rank = |p: f64| {
        let r = (p * samples.len() as f64).ceil() as usize;
        samples[r.clamp(1, samples.len()) - 1]
    };
    Percentiles {
        count: samples.len(),
        p50: rank(0.50),
        p95: rank(0.95),
        p99: rank(0.99),
        max: samples[samples.len() - 1],
    }
}

/// One client of a plan at the end of the fan-out.
#[derive(Debug, Clone)]
pub struct ClientEnd<S> {
    /// The client's number (the `c` of the keys `t<c>-<n>` it wrote).
    pub id: u32,
    /// How many updates it sent: `t<id>-0` … `t<id>-<sent-1>`.
    pub sent: u32,
    /// The other clients' updates its document holds, as (sender, n).
    pub holds: HashSet<(u32, u32)>,
    /// Its final document, in a form that compares equal when the states are the same.
    pub state: S,
}

/// What became of one plan's updates.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Delivery {
    /// Deliveries expected: every update × every other client of its plan.
    pub expected: u64,
    /// Of those, the ones that arrived.
    pub delivered: u64,
    /// Updates that at least one other client never received.
    pub missed: u64,
    /// Plans whose clients ended with different documents.
    pub diverged: u64,
}

impl std::ops::AddAssign for Delivery {
    fn add_assign(&mut self, other: Self) {
        self.expected += other.expected;
        self.delivered += other.delivered;
        self.missed += other.missed;
        self.diverged += other.diverged;
    }
}

/// Accounts one plan: every client should hold every other client's updates and all should
/// end with the same document.
pub fn account_plan<S: PartialEq>(clients: &[ClientEnd<S>]) -> Delivery {
    let mut d = Delivery::default();
    for sender in clients {
        for n in 0..sender.sent {
            let mut all = true;
            for receiver in clients.iter().filter(|r| r.id != sender.id) {
                d.expected += 1;
                if receiver.holds.contains(&(sender.id, n)) {
                    d.delivered += 1;
                } else {
                    all = false;
                }
            }
            if !all {
                d.missed += 1;
            }
        }
    }
    if let Some(first) = clients.first()
        && clients.iter().any(|c| c.state != first.state)
    {
        d.diverged = 1;
    }
    d
}

/// The key an update carries: `t<client>-<n>`.
pub fn key(client: u32, n: u32) -> String {
    format!("t{client}-{n}")
}

/// Reads a key written by [`key`].
pub fn parse_key(key: &str) -> Option<(u32, u32)> {
    let (c, n) = key.strip_prefix('t')?.split_once('-')?;
    Some((c.parse().ok()?, n.parse().ok()?))
}

/// The server's RSS at the steps of opening sockets over plans: before any, after one socket
/// per plan (every plan's room loaded), after all of them. Splits what a connection costs from
/// what a loaded room costs.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ConnMemory {
    /// Bytes before the first socket.
    pub start: u64,
    /// Bytes with one socket open on each plan.
    pub rooms_open: u64,
    /// Bytes with every socket open.
    pub all_open: u64,
    pub plans: usize,
    pub sockets: usize,
}

impl ConnMemory {
    /// Bytes per socket counting everything the sockets brought: rooms loaded cold included.
    pub fn per_socket_cold(&self) -> f64 {
        growth_per(self.start, self.all_open, self.sockets)
    }

    /// Bytes per socket opened on plans whose rooms were already loaded: the connection alone.
    pub fn per_socket_warm(&self) -> f64 {
        growth_per(
            self.rooms_open,
            self.all_open,
            self.sockets.saturating_sub(self.plans),
        )
    }

    /// Bytes per plan for its first socket: the room's load plus one connection.
    pub fn per_room(&self) -> f64 {
        growth_per(self.start, self.rooms_open, self.plans)
    }
}

/// `(after - before) / n`: growth below zero (the allocator handed memory back) reads 0, as
/// does a step that opened nothing.
pub fn growth_per(before: u64, after: u64, n: usize) -> f64 {
    if n == 0 {
        return 0.0;
    }
    after.saturating_sub(before) as f64 / n as f64
}

/// CPU seconds over a wall-clock window as a percentage of one core (0 for an empty window).
pub fn percent_of_a_core(cpu_s: f64, wall_s: f64) -> f64 {
    if wall_s > 0.0 {
        100.0 * cpu_s / wall_s
    } else {
        0.0
    }
}

/// Which of `plans` plans the `i`-th of a scenario's sockets opens: round-robin, so each plan
/// gets `sockets / plans` of them or one more, and the first `plans` sockets open every plan
/// once (the rooms are loaded before any plan has a second socket).
pub fn plan_of(i: usize, plans: usize) -> usize {
    i % plans.max(1)
}

/// The least, the median (the upper one of an even count) and the largest of repeated runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    pub min: f64,
    pub median: f64,
    pub max: f64,
}

pub fn spread(values: &[f64]) -> Option<Spread> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    Some(Spread {
        min: *sorted.first()?,
        median: sorted[sorted.len() / 2],
        max: *sorted.last()?,
    })
}

/// The acknowledgements either side of a kill: the last that arrived at or before it and the
/// first after it (µs on one clock). The writes stalled from `last_before` to `first_after`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AckGap {
    pub kill: u64,
    pub last_before: u64,
    pub first_after: u64,
}

impl AckGap {
    /// From the last ack before the kill to the first after it: writes were not acknowledged
    /// for this long.
    pub fn gap_us(&self) -> u64 {
        self.first_after - self.last_before
    }

    /// From the kill itself to the first ack after it.
    pub fn after_kill_us(&self) -> u64 {
        self.first_after - self.kill
    }
}

/// Finds the [`AckGap`] around `kill` in `acks` (arrival times, in any order); None unless
/// acks arrived both before (or at) and after it.
pub fn ack_gap(acks: &[u64], kill: u64) -> Option<AckGap> {
    let last_before = acks.iter().copied().filter(|&t| t <= kill).max()?;
    let first_after = acks.iter().copied().filter(|&t| t > kill).min()?;
    Some(AckGap {
        kill,
        last_before,
        first_after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gap(acks: &[u64], kill: u64) -> Option<(u64, u64)> {
        ack_gap(acks, kill).map(|g| (g.gap_us(), g.after_kill_us()))
    }

    #[test]
    fn the_ack_gap_runs_from_the_last_ack_before_the_kill_to_the_first_after() {
        assert_eq!(gap(&[10, 20, 30, 5_030, 5_040], 35), Some((5_000, 4_995)));
        // An ack at the very moment of the kill is before it; the order of arrival is not
        // assumed.
        assert_eq!(gap(&[5_040, 35, 20, 5_030], 35), Some((4_995, 4_995)));
        // No ack after the kill (writes never recovered), or none before (nothing to measure
        // from): no gap.
        assert_eq!(gap(&[10, 20], 35), None);
        assert_eq!(gap(&[40, 50], 35), None);
        assert_eq!(gap(&[], 35), None);
    }

    fn check(mut samples: Vec<u64>, expected: (u64, u64, u64, u64)) {
        let p = percentiles(&mut samples);
        assert_eq!((p.p50, p.p95, p.p99, p.max), expected, "{samples:?}");
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        check((1..=100).rev().collect(), (50, 95, 99, 100));
        check((1..=1000).collect(), (500, 950, 990, 1000));
        check(vec![7], (7, 7, 7, 7));
        check(vec![1, 2], (1, 2, 2, 2));
        // One slow delivery in 200 is above p99 but is the max.
        let mut tail = vec![1; 199];
        tail.push(5000);
        check(tail, (1, 1, 1, 5000));
        assert_eq!(percentiles(&mut []), Percentiles::default());
    }

    fn client(id: u32, sent: u32, holds: &[(u32, u32)], state: &str) -> ClientEnd<String> {
        ClientEnd {
            id,
            sent,
            holds: holds.iter().copied().collect(),
            state: state.to_owned(),
        }
    }

    #[test]
    fn a_complete_plan_has_nothing_missed_or_diverged() {
        let d = account_plan(&[
            client(0, 2, &[(1, 0), (1, 1)], "s"),
            client(1, 2, &[(0, 0), (0, 1)], "s"),
        ]);
        assert_eq!(
            d,
            Delivery {
                expected: 4,
                delivered: 4,
                missed: 0,
                diverged: 0
            }
        );
    }

    #[test]
    fn an_update_one_client_lacks_is_missed_once() {
        // Client 2 never got (0, 1); client 1 did. Client 0's own keys do not count for it.
        let d = account_plan(&[
            client(0, 2, &[(1, 0), (2, 0), (0, 0)], "a"),
            client(1, 1, &[(0, 0), (0, 1), (2, 0)], "a"),
            client(2, 1, &[(0, 0), (1, 0)], "b"),
        ]);
        assert_eq!(d.expected, 8);
        assert_eq!(d.delivered, 7);
        assert_eq!(d.missed, 1);
        assert_eq!(d.diverged, 1);
    }

    #[test]
    fn an_update_nobody_received_is_missed_once_not_per_receiver() {
        let d = account_plan(&[
            client(0, 1, &[], "a"),
            client(1, 0, &[], "a"),
            client(2, 0, &[], "a"),
        ]);
        assert_eq!(
            (d.expected, d.delivered, d.missed, d.diverged),
            (2, 0, 1, 0)
        );
    }

    #[test]
    fn keys_round_trip_and_strangers_are_not_keys() {
        assert_eq!(parse_key(&key(12, 345)), Some((12, 345)));
        for stranger in ["notes", "t", "t1", "t-1", "tx-1", "t1-", "x1-2"] {
            assert_eq!(parse_key(stranger), None, "{stranger}");
        }
    }

    #[test]
    fn connection_memory_splits_rooms_from_sockets() {
        // 10 plans, 50 sockets: 10 MiB to load the rooms (with their first socket), 4 MiB more
        // for the other 40 sockets.
        let m = ConnMemory {
            start: 100 << 20,
            rooms_open: 110 << 20,
            all_open: 114 << 20,
            plans: 10,
            sockets: 50,
        };
        assert_eq!(m.per_room(), (1 << 20) as f64);
        assert_eq!(m.per_socket_warm(), (4 << 20) as f64 / 40.0);
        assert_eq!(m.per_socket_cold(), (14 << 20) as f64 / 50.0);
        // As many sockets as plans: no warm socket to divide by.
        let one_each = ConnMemory {
            sockets: 10,
            all_open: 110 << 20,
            ..m
        };
        assert_eq!(one_each.per_socket_warm(), 0.0);
    }

    #[test]
    fn growth_is_never_negative_and_nothing_opened_costs_nothing() {
        assert_eq!(growth_per(1000, 3000, 4), 500.0);
        assert_eq!(growth_per(3000, 1000, 4), 0.0);
        assert_eq!(growth_per(1000, 3000, 0), 0.0);
    }

    #[test]
    fn sockets_spread_round_robin_and_open_every_plan_first() {
        let (sockets, plans) = (5000, 1000);
        let mut per_plan = vec![0; plans];
        for i in 0..sockets {
            per_plan[plan_of(i, plans)] += 1;
        }
        assert!(per_plan.iter().all(|&n| n == 5));
        let first: std::collections::HashSet<_> = (0..plans).map(|i| plan_of(i, plans)).collect();
        assert_eq!(first.len(), plans);
        // An uneven split differs by one at most.
        let mut uneven = vec![0; 3];
        for i in 0..8 {
            uneven[plan_of(i, 3)] += 1;
        }
        assert_eq!(uneven, vec![3, 3, 2]);
        assert_eq!(plan_of(7, 0), 0);
    }

    #[test]
    fn idle_cpu_is_a_share_of_one_core() {
        assert_eq!(percent_of_a_core(0.05, 10.0), 0.5);
        assert_eq!(percent_of_a_core(20.0, 10.0), 200.0);
        assert_eq!(percent_of_a_core(1.0, 0.0), 0.0);
    }

    #[test]
    fn spread_is_min_median_max() {
        let s = spread(&[1339.0, 463.0, 900.0]);
        assert_eq!(
            s,
            Some(Spread {
                min: 463.0,
                median: 900.0,
                max: 1339.0
            })
        );
        assert_eq!(spread(&[2.0, 1.0]).map(|s| s.median), Some(2.0));
        assert_eq!(spread(&[]), None);
    }
}
