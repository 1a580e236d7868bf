//! Anchors: a few long-lived, verified peers remembered across restarts.
//!
//! Bitcoin Core redials its last block-relay peers first after a restart, so
//! an attacker who filled its address tables while it was down still cannot
//! surround it. Here, [`Membership::anchors`](super::Membership::anchors)
//! names up to `max_anchors` verified live peers (longest verified first, at
//! most one per network group); the caller persists them (one
//! `peer@addr` line each, [`Anchor`]'s `Display`/`FromStr`) and hands them
//! back to [`Membership::restore_anchors`](super::Membership::restore_anchors)
//! after a restart. A restored anchor is gossiped with once a round, and its
//! advert is admitted as verified when it still names the anchored address.

use std::fmt;
use std::str::FromStr;

use peergrid_proto::PeerId;

/// A peer to reconnect to first after a restart.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Anchor {
    /// Its peer id.
    pub peer: PeerId,
    /// The address it was verified at.
    pub addr: String,
}

impl fmt::Display for Anchor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.peer, self.addr)
    }
}

/// Why an anchor line does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("anchor is not `peer-id-hex@address`: {0}")]
pub struct AnchorParseError(String);

impl FromStr for Anchor {
    type Err = AnchorParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || AnchorParseError(s.to_string());
        let (peer, addr) = s.trim().split_once('@').ok_or_else(bad)?;
        if addr.is_empty() {
            return Err(bad());
        }
        Ok(Self {
            peer: peer.parse().map_err(|_| bad())?,
            addr: addr.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchor_lines_round_trip() {
        let a = Anchor {
            peer: PeerId::from_bytes([0xab; 32]),
            addr: "203.0.113.5:7400".into(),
        };
        let line = a.to_string();
        assert!(line.starts_with("abab"));
        assert_eq!(line.parse::<Anchor>().unwrap(), a);
        assert!("nonsense".parse::<Anchor>().is_err());
        assert!("abab@".parse::<Anchor>().is_err());
    }
}
