//! Placement: which workers run a job's replicas. Pure code, no I/O.
//!
//! The rules, in order:
//! 1. Never the same peer twice for one job, and never two replicas in one
//!    network group ([`Diversity`]; by default one IPv4 /24 or IPv6 /48), so
//!    one operator cannot cast several votes through several identities on
//!    one machine or one subnet. Loopback and private addresses fall back to
//!    distinct `host:port` endpoints, which local grids and tests use.
//! 2. Only workers whose advertised limits admit the job, and all of one
//!    platform (homogeneous redundancy, see [`choose`]).
//! 3. Prefer workers with free slots, then established (trusted) workers, so
//!    that a job can run on fewer of them, then those this scheduler has given the
//!    least work so far (spreading work spreads the chances to catch a
//!    cheater), then a per-job pseudo-random order (rendezvous hashing on
//!    the job id) so equal workers share load without coordination.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};

use peergrid_proto::{PeerId, sha256};

use crate::membership::group::is_local;

/// How different two workers' network locations must be to both run
/// replicas of one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Diversity {
    /// One replica per IPv4 /24 or IPv6 /48 (the default). Loopback,
    /// private, link-local and unique-local addresses fall back to one per
    /// `host:port`, so a grid on one machine or a test network still works.
    #[default]
    Subnet,
    /// One replica per IP address (any port).
    Address,
    /// One replica per `host:port` endpoint.
    Endpoint,
}

/// The network group of a worker address under `rule`: two workers in the
/// same group never both run one job. Addresses that are not an IP literal
/// are grouped by host name (or `host:port` for [`Diversity::Endpoint`]).
pub fn network_group(addr: &str, rule: Diversity) -> String {
    let Ok(socket) = addr.parse::<SocketAddr>() else {
        let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
        return match rule {
            Diversity::Endpoint => addr.to_string(),
            Diversity::Subnet | Diversity::Address => format!("host {host}"),
        };
    };
    let ip = socket.ip();
    match rule {
        Diversity::Endpoint => socket.to_string(),
        Diversity::Address => ip.to_string(),
        Diversity::Subnet if is_local(&ip) => socket.to_string(),
        Diversity::Subnet => match ip {
            IpAddr::V4(v4) => {
                let [a, b, c, _] = v4.octets();
                format!("{a}.{b}.{c}.0/24")
            }
            IpAddr::V6(v6) => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
            }
        },
    }
}

/// What placement knows about one worker.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The worker's identity.
    pub peer: PeerId,
    /// Where it listens (`host:port`).
    pub addr: String,
    /// Free job slots it advertised.
    pub free_slots: u32,
    /// Replicas this scheduler has placed on it so far.
    pub placed: u64,
    /// Whether its advertised maxima admit the job.
    pub admits_job: bool,
    /// Whether this node trusts it enough to let it run jobs alone.
    pub established: bool,
    /// The class of machines whose runs are bit-identical to this
    /// worker's (architecture, wasmtime version, NaN mode, stack budget),
    /// as its `Hello` names it; empty if it did not say.
    pub platform: String,
}

/// Chooses up to `count` candidates for a job, excluding peers in `exclude`
/// and network groups in `used_groups` (those the job already runs in), at
/// most one per group under `rule`. Returns indexes into `candidates`, best
/// first.
///
/// All chosen candidates share one [`Candidate::platform`]: honest
/// replicas on different platforms may differ in the bits of a NaN or the
/// depth at which a recursion runs out of stack, which would look like
/// cheating (BOINC calls this *homogeneous redundancy*). The platform is
/// the one with the most usable workers, so the job can escalate as far as
/// possible; on a tie, the platform of the best-ranked worker. On a grid of
/// one platform this changes nothing.
pub fn choose(
    candidates: &[Candidate],
    count: usize,
    job_id: &[u8; 32],
    exclude: &HashSet<PeerId>,
    used_groups: &HashSet<String>,
    rule: Diversity,
) -> Vec<usize> {
    let mut order: Vec<usize> = (0..candidates.len())
        .filter(|&i| {
            let c = &candidates[i];
            c.admits_job
                && !exclude.contains(&c.peer)
                && !used_groups.contains(&network_group(&c.addr, rule))
        })
        .collect();
    order.sort_by_key(|&i| {
        let c = &candidates[i];
        (
            c.free_slots == 0,
            !c.established,
            c.placed,
            rendezvous(job_id, &c.peer),
        )
    });
    // Distinct usable workers per platform, in ranking order.
    let mut platforms: Vec<(&str, Vec<usize>)> = Vec::new();
    let mut peers = HashSet::new();
    let mut groups = HashSet::new();
    for i in order {
        let c = &candidates[i];
        if !peers.insert(c.peer) {
            continue;
        }
        let group = network_group(&c.addr, rule);
        // A group is taken per platform: a platform's own count must not
        // shrink because another platform's worker shares its subnet.
        if !groups.insert((c.platform.as_str(), group)) {
            continue;
        }
        match platforms.iter_mut().find(|(p, _)| *p == c.platform) {
            Some((_, members)) => members.push(i),
            None => platforms.push((c.platform.as_str(), vec![i])),
        }
    }
    // The largest; `max_by_key` keeps the last of equals, so go in reverse
    // to keep the best-ranked platform on a tie.
    let mut chosen = platforms
        .into_iter()
        .rev()
        .max_by_key(|(_, members)| members.len())
        .map(|(_, members)| members)
        .unwrap_or_default();
    chosen.truncate(count);
    chosen
}

fn rendezvous(job_id: &[u8; 32], peer: &PeerId) -> [u8; 32] {
    let mut bytes = [0u8; 64];
    bytes[..32].copy_from_slice(job_id);
    bytes[32..].copy_from_slice(peer.as_bytes());
    sha256(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use peergrid_proto::Identity;

    fn cand(addr: &str, free: u32, placed: u64) -> Candidate {
        Candidate {
            peer: Identity::generate().peer_id(),
            addr: addr.into(),
            free_slots: free,
            placed,
            admits_job: true,
            established: false,
            platform: "x86_64/wasmtime-48.0.8/nan-native/stack-524288".into(),
        }
    }

    #[test]
    fn distinct_peers_and_addresses() {
        let mut cs = vec![cand("a:1", 1, 0), cand("a:1", 1, 0), cand("b:1", 1, 0)];
        cs[1].peer = cs[0].peer;
        let got = choose(
            &cs,
            3,
            &[0; 32],
            &HashSet::new(),
            &HashSet::new(),
            Diversity::Subnet,
        );
        assert_eq!(got.len(), 2);
        let addrs: HashSet<_> = got.iter().map(|&i| cs[i].addr.clone()).collect();
        assert_eq!(addrs.len(), 2);
    }

    #[test]
    fn two_identities_on_one_address_get_one_replica() {
        let cs = vec![cand("x:9", 4, 0), cand("x:9", 4, 0), cand("y:9", 4, 0)];
        let got = choose(
            &cs,
            3,
            &[1; 32],
            &HashSet::new(),
            &HashSet::new(),
            Diversity::Subnet,
        );
        assert_eq!(got.len(), 2);
    }

    #[test]
    fn prefers_free_then_least_used() {
        let cs = vec![cand("a:1", 0, 0), cand("b:1", 2, 5), cand("c:1", 2, 1)];
        let got = choose(
            &cs,
            2,
            &[0; 32],
            &HashSet::new(),
            &HashSet::new(),
            Diversity::Subnet,
        );
        assert_eq!(got, vec![2, 1]);
    }

    #[test]
    fn respects_exclusions_and_admission() {
        let mut cs = vec![cand("a:1", 1, 0), cand("b:1", 1, 0), cand("c:1", 1, 0)];
        cs[2].admits_job = false;
        let exclude: HashSet<_> = [cs[0].peer].into();
        let got = choose(
            &cs,
            3,
            &[0; 32],
            &exclude,
            &HashSet::new(),
            Diversity::Subnet,
        );
        assert_eq!(got, vec![1]);
        let used: HashSet<_> = [network_group("b:1", Diversity::Subnet)].into();
        assert!(choose(&cs, 3, &[0; 32], &exclude, &used, Diversity::Subnet).is_empty());
    }

    #[test]
    fn spreads_work_evenly_over_many_jobs() {
        let mut cs: Vec<_> = (0..4)
            .map(|i| cand(&format!("127.0.0.1:{i}"), 1, 0))
            .collect();
        for j in 0..40u8 {
            for i in choose(
                &cs,
                3,
                &[j; 32],
                &HashSet::new(),
                &HashSet::new(),
                Diversity::Subnet,
            ) {
                cs[i].placed += 1;
            }
        }
        for c in &cs {
            assert_eq!(c.placed, 30, "120 replicas over 4 peers");
        }
    }

    #[test]
    fn one_replica_per_public_24_but_local_addresses_fall_back_to_endpoints() {
        let g = |a: &str| network_group(a, Diversity::Subnet);
        assert_eq!(g("203.0.113.7:7400"), g("203.0.113.200:9000"));
        assert_ne!(g("203.0.113.7:7400"), g("203.0.114.7:7400"));
        assert_eq!(g("[2001:db8:1:2::1]:7400"), g("[2001:db8:1:ffff::9]:1"));
        assert_ne!(g("127.0.0.1:7001"), g("127.0.0.1:7002"));
        assert_ne!(g("192.168.1.5:7001"), g("192.168.1.6:7001"));
        assert_eq!(
            network_group("10.0.0.1:1", Diversity::Address),
            network_group("10.0.0.1:2", Diversity::Address)
        );
        assert_ne!(
            network_group("10.0.0.1:1", Diversity::Endpoint),
            network_group("10.0.0.1:2", Diversity::Endpoint)
        );
        assert_eq!(g("node.example:7400"), g("node.example:7401"));

        // Three public workers, two in one /24: a job gets two replicas.
        let cs = vec![
            cand("198.51.100.1:7400", 1, 0),
            cand("198.51.100.2:7400", 1, 0),
            cand("192.0.2.9:7400", 1, 0),
        ];
        assert_eq!(
            choose(
                &cs,
                3,
                &[0; 32],
                &HashSet::new(),
                &HashSet::new(),
                Diversity::Subnet
            )
            .len(),
            2
        );
        assert_eq!(
            choose(
                &cs,
                3,
                &[0; 32],
                &HashSet::new(),
                &HashSet::new(),
                Diversity::Address
            )
            .len(),
            3
        );
    }

    #[test]
    fn all_replicas_come_from_the_largest_platform() {
        let arm = "aarch64/wasmtime-48.0.8/nan-native/stack-524288";
        let mut cs: Vec<Candidate> = (1..=5)
            .map(|i| cand(&format!("198.51.{i}.1:7400"), 1, 0))
            .collect();
        // Three arm workers, two x86 ones, an arm one ranked first.
        for c in &mut cs[..3] {
            c.platform = arm.into();
        }
        cs[0].established = true;
        let all = |cs: &[Candidate]| {
            choose(
                cs,
                5,
                &[0; 32],
                &HashSet::new(),
                &HashSet::new(),
                Diversity::Subnet,
            )
        };
        let got = all(&cs);
        assert_eq!(got.len(), 3);
        assert!(got.iter().all(|&i| cs[i].platform == arm), "{got:?}");

        // Two arm, two x86 and one riscv: the tie goes to the platform of
        // the best-ranked worker.
        cs[2].platform = cs[3].platform.clone();
        cs[4].platform = "riscv64/wasmtime-48.0.8/nan-native/stack-524288".into();
        cs[3].established = true;
        cs[0].established = false;
        let got = all(&cs);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], 3, "the established x86 worker leads");
        assert!(got.iter().all(|&i| cs[i].platform != arm), "{got:?}");
    }
}
