//! Placement: which workers run a job's replicas. Pure code, no I/O.
//!
//! The rules, in order:
//! 1. Never the same peer twice for one job, and never two replicas on one
//!    network address (`host:port`), so one machine cannot cast two votes
//!    through two identities on one listener.
//! 2. Only workers whose advertised limits admit the job.
//! 3. Prefer workers with free slots, then established (trusted) workers, so
//!    that a job can run on fewer of them, then those this scheduler has given the
//!    least work so far (spreading work spreads the chances to catch a
//!    cheater), then a per-job pseudo-random order (rendezvous hashing on
//!    the job id) so equal workers share load without coordination.

use std::collections::HashSet;

use peergrid_proto::{PeerId, sha256};

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
/// and addresses in `used_addrs` (those already running a replica).
/// Returns indexes into `candidates`, best first.
pub fn choose(
    candidates: &[Candidate],
    count: usize,
    job_id: &[u8; 32],
    exclude: &HashSet<PeerId>,
    used_addrs: &HashSet<String>,
) -> Vec<usize> {
    let mut order: Vec<usize> = (0..candidates.len())
        .filter(|&i| {
            let c = &candidates[i];
            c.admits_job && !exclude.contains(&c.peer) && !used_addrs.contains(&c.addr)
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
    let mut addrs = HashSet::new();
    for i in order {
        if chosen.len() == count {
            break;
        }
        let c = &candidates[i];
        if peers.insert(c.peer) && addrs.insert(c.addr.clone()) {
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
        let got = choose(&cs, 3, &[0; 32], &HashSet::new(), &HashSet::new());
        assert_eq!(got.len(), 2);
        let addrs: HashSet<_> = got.iter().map(|&i| cs[i].addr.clone()).collect();
        assert_eq!(addrs.len(), 2);
    }

    #[test]
    fn two_identities_on_one_address_get_one_replica() {
        let cs = vec![cand("x:9", 4, 0), cand("x:9", 4, 0), cand("y:9", 4, 0)];
        let got = choose(&cs, 3, &[1; 32], &HashSet::new(), &HashSet::new());
        assert_eq!(got.len(), 2);
    }

    #[test]
    fn prefers_free_then_least_used() {
        let cs = vec![cand("a:1", 0, 0), cand("b:1", 2, 5), cand("c:1", 2, 1)];
        let got = choose(&cs, 2, &[0; 32], &HashSet::new(), &HashSet::new());
        assert_eq!(got, vec![2, 1]);
    }

    #[test]
    fn respects_exclusions_and_admission() {
        let mut cs = vec![cand("a:1", 1, 0), cand("b:1", 1, 0), cand("c:1", 1, 0)];
        cs[2].admits_job = false;
        let exclude: HashSet<_> = [cs[0].peer].into();
        let got = choose(&cs, 3, &[0; 32], &exclude, &HashSet::new());
        assert_eq!(got, vec![1]);
        let used: HashSet<_> = ["b:1".to_string()].into();
        assert!(choose(&cs, 3, &[0; 32], &exclude, &used).is_empty());
    }

    #[test]
    fn spreads_work_evenly_over_many_jobs() {
        let mut cs: Vec<_> = (0..4).map(|i| cand(&format!("h:{i}"), 1, 0)).collect();
        for j in 0..40u8 {
            for i in choose(&cs, 3, &[j; 32], &HashSet::new(), &HashSet::new()) {
                cs[i].placed += 1;
            }
        }
        for c in &cs {
            assert_eq!(c.placed, 30, "120 replicas over 4 peers");
        }
    }
}
