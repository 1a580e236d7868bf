//! Placement: which workers run a job's replicas. Pure code, no I/O.
//!
//! The rules, in order:
//! 1. Never the same peer twice for one job, and never two replicas in one
//!    network group ([`Diversity`]; by default one IPv4 /24 or IPv6 /48), so
//!    one operator cannot cast several votes through several identities on
//!    one machine or one subnet. Loopback and private addresses fall back to
//!    distinct `host:port` endpoints, which local grids and tests use.
//! 2. Only workers whose advertised limits admit the job.
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
}

/// Chooses up to `count` candidates for a job, excluding peers in `exclude`
/// and network groups in `used_groups` (those the job already runs in), at
/// most one per group under `rule`. Returns indexes into `candidates`, best
/// first.
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
    let mut chosen = Vec::with_capacity(count);
    let mut peers = HashSet::new();
    let mut groups = HashSet::new();
    for i in order {
        if chosen.len() == count {
            break;
        }
        let c = &candidates[i];
        if peers.insert(c.peer) && groups.insert(network_group(&c.addr, rule)) {
            chosen.push(i);
        }
    }
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
}
