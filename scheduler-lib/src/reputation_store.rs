//! Reputation on disk: conversion between [`PeerReputation`] /
//! [`FaultCounts`] and their ledger records, and loading and saving them
//! through a [`Ledger`].

use peergrid_proto::{PeerId, pb};
use prost::Message;

use crate::ledger::{Ledger, LedgerError};
use crate::reputation::{FaultCounts, PeerReputation, Reputation};

/// Key of the fault counts in the ledger's state table.
const FAULT_COUNTS: &str = "fault_counts";

/// Encodes a peer's record for the ledger's `peers` table.
pub fn encode_peer(r: &PeerReputation) -> Vec<u8> {
    pb::PeerReputationRecord {
        good: r.good,
        bad: r.bad,
        consecutive_valid: r.consecutive_valid,
        agreed: r.agreed,
        dissented: r.dissented,
        timeouts: r.timeouts,
        invalid: r.invalid,
        spot_passed: r.spot_passed,
        spot_failed: r.spot_failed,
        first_seen_unix_ms: r.first_seen_ms,
        last_seen_unix_ms: r.last_seen_ms,
        banned: r.banned,
        banned_at_unix_ms: r.banned_at_ms.unwrap_or(0),
        times_banned: r.times_banned,
        recovery_progress: r.recovery_progress,
    }
    .encode_to_vec()
}

/// Decodes a peer's record, or `None` if the bytes are not one.
pub fn decode_peer(bytes: &[u8]) -> Option<PeerReputation> {
    let r = pb::PeerReputationRecord::decode(bytes).ok()?;
    Some(PeerReputation {
        good: r.good,
        bad: r.bad,
        consecutive_valid: r.consecutive_valid,
        agreed: r.agreed,
        dissented: r.dissented,
        timeouts: r.timeouts,
        invalid: r.invalid,
        spot_passed: r.spot_passed,
        spot_failed: r.spot_failed,
        first_seen_ms: r.first_seen_unix_ms,
        last_seen_ms: r.last_seen_unix_ms,
        banned: r.banned,
        banned_at_ms: (r.banned_at_unix_ms != 0).then_some(r.banned_at_unix_ms),
        times_banned: r.times_banned,
        recovery_progress: r.recovery_progress,
    })
}

/// Loads every stored peer record and the fault counts into `reputation`.
/// Records that do not decode are skipped with a warning.
pub fn load(ledger: &Ledger, reputation: &mut Reputation) -> Result<usize, LedgerError> {
    let mut loaded = 0;
    for (peer, bytes) in ledger.peers()? {
        match decode_peer(&bytes) {
            Some(record) => {
                reputation.restore(peer, record);
                loaded += 1;
            }
            None => {
                tracing::warn!(peer = %peer.short(), "skipping an unreadable reputation record")
            }
        }
    }
    if let Some(bytes) = ledger.state(FAULT_COUNTS)?
        && let Ok(c) = pb::FaultCountsRecord::decode(bytes.as_slice())
    {
        reputation.restore_fault_counts(FaultCounts {
            faults: c.faults,
            checks: c.checks,
            established_faults: c.established_faults,
            established_checks: c.established_checks,
        });
    }
    Ok(loaded)
}

/// The encoded records of `peers`, for [`Ledger::update_job_and_peers`].
pub fn encoded(
    reputation: &Reputation,
    peers: impl IntoIterator<Item = PeerId>,
) -> Vec<(PeerId, Vec<u8>)> {
    peers
        .into_iter()
        .filter_map(|p| reputation.get(&p).map(|r| (p, encode_peer(r))))
        .collect()
}

/// Saves the population fault counts.
pub fn save_fault_counts(ledger: &Ledger, counts: FaultCounts) -> Result<(), LedgerError> {
    let (name, value) = fault_counts_entry(counts);
    ledger.put_state(name, &value)
}

/// The ledger state entry (name, value) that [`save_fault_counts`] writes,
/// for writing it in a transaction with other changes.
pub fn fault_counts_entry(counts: FaultCounts) -> (&'static str, Vec<u8>) {
    let record = pb::FaultCountsRecord {
        faults: counts.faults,
        checks: counts.checks,
        established_faults: counts.established_faults,
        established_checks: counts.established_checks,
    };
    (FAULT_COUNTS, record.encode_to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reputation::{Observation, ReputationConfig};

    #[test]
    fn records_survive_a_round_trip_through_the_ledger() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path().join("l.redb")).unwrap();
        let mut rep = Reputation::new(ReputationConfig::default());
        let (a, b) = (PeerId::from_bytes([1; 32]), PeerId::from_bytes([2; 32]));
        for t in 0..5 {
            rep.observe(a, Observation::Agreed, t);
        }
        rep.observe(b, Observation::InvalidResult, 9);
        assert!(rep.is_banned(&b));
        for (peer, bytes) in encoded(&rep, [a, b]) {
            ledger.put_peer(&peer, &bytes).unwrap();
        }
        save_fault_counts(&ledger, rep.fault_counts()).unwrap();

        let mut again = Reputation::new(ReputationConfig::default());
        assert_eq!(load(&ledger, &mut again).unwrap(), 2);
        assert_eq!(again.get(&a), rep.get(&a));
        assert_eq!(again.get(&b), rep.get(&b));
        assert!(again.is_banned(&b));
        assert_eq!(again.fault_counts(), rep.fault_counts());
        assert!(decode_peer(b"\xff\xff").is_none());
    }
}
