//! Failure detection: gossip-style heartbeats (van Renesse, Minsky and
//! Hayden, "A Gossip-Style Failure Detection Service", Middleware 1998).
//!
//! Every node re-signs its advert every `refresh_interval_ms` (the
//! heartbeat: a higher sequence number and a new timestamp) and gossip
//! spreads it. A receiver judges a peer by the age of the newest advert it
//! holds for it, measured on its own clock against the advert's signed
//! timestamp:
//!
//! - younger than `suspect_after_ms`: **Alive**;
//! - older: **Suspect** (missed about three heartbeats with the defaults);
//! - older than `dead_after_ms` (`2 × suspect_after_ms` by default, the
//!   paper's T_cleanup = 2 × T_fail): **Dead** — no longer relayed nor
//!   picked as a gossip target, and forgotten `forget_after_ms` later.
//!
//! A peer that this node failed to reach (a gossip call or probe that
//! failed) is Suspect locally until it succeeds again or publishes a newer
//! advert; local failures never make other nodes drop it, since only the
//! peer's own signed heartbeats spread. Nobody can be declared dead by a
//! liar: the only evidence that travels is signed by the peer itself, and an
//! old advert replayed later is already old. A restarted node publishes a
//! higher sequence number ([`super::Advert::next_seq`]) and is Alive again
//! wherever it arrives.
//!
//! The cost of this detector is one advert per node per refresh interval
//! reaching every node (N² adverts per interval in all); the detection time
//! is `suspect_after_ms` (Suspect) and `dead_after_ms` (Dead) after the
//! last heartbeat, plus the O(log N) rounds the heartbeat needed to arrive.
//! Clocks must agree to well within `suspect_after_ms`; an advert more than
//! `max_clock_skew_ms` in the future is refused.

use super::MembershipConfig;

/// What this node believes about a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PeerState {
    /// Heard from recently.
    Alive,
    /// Its newest advert is getting old, or this node could not reach it.
    Suspect,
    /// Its newest advert is older than `dead_after_ms`: gone.
    Dead,
}

/// Whether an advert signed at `timestamp_ms` may enter the table at
/// `now_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Freshness {
    Fresh,
    /// Older than `dead_after_ms`: it would be Dead on arrival.
    Stale,
    /// More than `max_clock_skew_ms` ahead of this node's clock.
    Future,
}

pub(crate) fn freshness(config: &MembershipConfig, timestamp_ms: u64, now_ms: u64) -> Freshness {
    if timestamp_ms > now_ms.saturating_add(config.max_clock_skew_ms) {
        Freshness::Future
    } else if now_ms.saturating_sub(timestamp_ms) >= config.dead_after_ms {
        Freshness::Stale
    } else {
        Freshness::Fresh
    }
}

/// The state of a peer whose newest advert was signed at `timestamp_ms`,
/// after `failures` consecutive failed contacts, at `now_ms`.
pub(crate) fn state(
    config: &MembershipConfig,
    timestamp_ms: u64,
    failures: u8,
    now_ms: u64,
) -> PeerState {
    let age = now_ms.saturating_sub(timestamp_ms);
    if age >= config.dead_after_ms {
        PeerState::Dead
    } else if age >= config.suspect_after_ms || failures > 0 {
        PeerState::Suspect
    } else {
        PeerState::Alive
    }
}

/// Whether an advert this old is still relayed (not Dead by age).
pub(crate) fn relayed(config: &MembershipConfig, timestamp_ms: u64, now_ms: u64) -> bool {
    now_ms.saturating_sub(timestamp_ms) < config.dead_after_ms
}

/// Whether an entry this old is to be forgotten.
pub(crate) fn forgotten(config: &MembershipConfig, timestamp_ms: u64, now_ms: u64) -> bool {
    now_ms.saturating_sub(timestamp_ms)
        >= config.dead_after_ms.saturating_add(config.forget_after_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_follow_the_age_of_the_newest_advert() {
        let c = MembershipConfig::default();
        let t = 1_000_000;
        assert_eq!(state(&c, t, 0, t), PeerState::Alive);
        assert_eq!(
            state(&c, t, 0, t + c.suspect_after_ms - 1),
            PeerState::Alive
        );
        assert_eq!(state(&c, t, 0, t + c.suspect_after_ms), PeerState::Suspect);
        assert_eq!(state(&c, t, 1, t), PeerState::Suspect);
        assert_eq!(state(&c, t, 0, t + c.dead_after_ms), PeerState::Dead);
        assert!(relayed(&c, t, t + c.dead_after_ms - 1));
        assert!(!relayed(&c, t, t + c.dead_after_ms));
        assert!(!forgotten(&c, t, t + c.dead_after_ms));
        assert!(forgotten(&c, t, t + c.dead_after_ms + c.forget_after_ms));
    }

    #[test]
    fn replays_and_future_adverts_are_refused() {
        let c = MembershipConfig::default();
        let now = 10_000_000;
        assert_eq!(freshness(&c, now, now), Freshness::Fresh);
        assert_eq!(freshness(&c, now - c.dead_after_ms, now), Freshness::Stale);
        assert_eq!(
            freshness(&c, now + c.max_clock_skew_ms, now),
            Freshness::Fresh
        );
        assert_eq!(
            freshness(&c, now + c.max_clock_skew_ms + 1, now),
            Freshness::Future
        );
    }
}
