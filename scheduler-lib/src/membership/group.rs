//! Network groups and secret bucket placement (Bitcoin Core's addrman).
//!
//! A peer's *network group* is the part of its primary address that one
//! operator cannot cheaply vary: an IPv4 /16 or an IPv6 /32 by default,
//! the prefixes Bitcoin Core buckets by. Loopback and private addresses say
//! nothing about who runs a machine, so they are grouped by full endpoint
//! (`ip:port`) by default, which lets a grid on one machine or a test
//! network work; the rule is configurable ([`NetGroups`]).
//!
//! The table places a peer in one of `buckets` buckets by a keyed hash of
//! its group and of a slot drawn from its peer id: each group can only ever
//! reach `buckets_per_group` buckets, and without the node's secret key an
//! attacker cannot tell which, so it cannot aim its identities at the
//! buckets holding a victim's honest peers.

use std::net::{IpAddr, SocketAddr};

use peergrid_proto::{PeerId, sha256};

/// How to group loopback, private, link-local and unique-local addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LocalGrouping {
    /// One group per `ip:port` endpoint (the default: a local test grid).
    #[default]
    Endpoint,
    /// One group per IP address (any port).
    Address,
    /// Like public addresses (the configured prefixes).
    Prefix,
}

/// The grouping rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetGroups {
    /// IPv4 prefix length of a group (16, as Bitcoin Core).
    pub ipv4_prefix: u8,
    /// IPv6 prefix length of a group (32, as Bitcoin Core).
    pub ipv6_prefix: u8,
    /// How local and private addresses are grouped.
    pub local: LocalGrouping,
}

impl Default for NetGroups {
    fn default() -> Self {
        Self {
            ipv4_prefix: 16,
            ipv6_prefix: 32,
            local: LocalGrouping::Endpoint,
        }
    }
}

impl NetGroups {
    /// The group of a primary address, readable (`"v4 203.0.0.0/16"`,
    /// `"ep 127.0.0.1:7001"`, …). Addresses that are not `ip:port` literals
    /// (host names) all share one group, `"host"`: a host name costs
    /// nothing to mint, so it earns no diversity.
    pub fn group_of(&self, addr: &str) -> String {
        match addr.parse::<SocketAddr>() {
            Ok(socket) => match self.key(socket) {
                GroupKey::V4(ip, len) => format!("v4 {}/{len}", std::net::Ipv4Addr::from(ip)),
                GroupKey::V6(ip, len) => format!("v6 {}/{len}", std::net::Ipv6Addr::from(ip)),
                GroupKey::Ip(ip) => format!("ip {ip}"),
                GroupKey::Endpoint(socket) => format!("ep {socket}"),
                GroupKey::Host => "host".into(),
            },
            Err(_) => "host".into(),
        }
    }

    fn key(&self, socket: SocketAddr) -> GroupKey {
        let ip = socket.ip();
        if is_local(&ip) {
            match self.local {
                LocalGrouping::Endpoint => return GroupKey::Endpoint(socket),
                LocalGrouping::Address => return GroupKey::Ip(ip),
                LocalGrouping::Prefix => {}
            }
        }
        match ip {
            IpAddr::V4(v4) => {
                let len = self.ipv4_prefix.min(32);
                let bits = u32::from(v4) & mask32(len);
                GroupKey::V4(bits, len)
            }
            IpAddr::V6(v6) => {
                let len = self.ipv6_prefix.min(128);
                let bits = u128::from(v6) & mask128(len);
                GroupKey::V6(bits, len)
            }
        }
    }

    /// The group's bytes, hashed with the node's secret.
    fn key_bytes(&self, primary: Option<SocketAddr>, out: &mut Vec<u8>) {
        match primary.map(|s| self.key(s)).unwrap_or(GroupKey::Host) {
            GroupKey::V4(bits, len) => {
                out.push(4);
                out.extend_from_slice(&bits.to_be_bytes());
                out.push(len);
            }
            GroupKey::V6(bits, len) => {
                out.push(6);
                out.extend_from_slice(&bits.to_be_bytes());
                out.push(len);
            }
            GroupKey::Ip(ip) => {
                out.push(1);
                out.extend_from_slice(ip.to_string().as_bytes());
            }
            GroupKey::Endpoint(socket) => {
                out.push(2);
                out.extend_from_slice(socket.to_string().as_bytes());
            }
            GroupKey::Host => out.push(0),
        }
    }
}

enum GroupKey {
    V4(u32, u8),
    V6(u128, u8),
    Ip(IpAddr),
    Endpoint(SocketAddr),
    Host,
}

fn mask32(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    }
}

fn mask128(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(len))
    }
}

/// Loopback, private (RFC 1918), link-local, CGNAT, unspecified and IPv6
/// unique-local addresses.
pub fn is_local(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
        }
    }
}

/// Where a peer lives in one node's table: its group (as a keyed 32-bit
/// tag) and its bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Placement {
    pub group: u32,
    pub bucket: u16,
    /// Secret per-group word that maps the group's slots to buckets.
    seed: u64,
}

/// Computes placements with the node's secret key.
#[derive(Clone)]
pub(crate) struct Bucketing {
    secret: [u8; 32],
    rule: NetGroups,
    buckets: usize,
    per_group: usize,
}

impl Bucketing {
    pub fn new(secret: [u8; 32], rule: NetGroups, buckets: usize, per_group: usize) -> Self {
        Self {
            secret,
            rule,
            buckets: buckets.clamp(1, usize::from(u16::MAX)),
            per_group: per_group.max(1),
        }
    }

    /// `bucket = H(secret, group, slot) mod buckets` with
    /// `slot = H(secret, group, peer) mod buckets_per_group`: one SHA-256.
    pub fn place(&self, peer: &PeerId, primary: Option<SocketAddr>) -> Placement {
        let mut input = Vec::with_capacity(64);
        input.extend_from_slice(&self.secret);
        self.rule.key_bytes(primary, &mut input);
        let digest = sha256(&input);
        let word = |i: usize| {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(&digest[i..i + 8]);
            u64::from_le_bytes(bytes)
        };
        let group = u32::from_le_bytes([digest[0], digest[1], digest[2], digest[3]]);
        let mut id = [0u8; 8];
        id.copy_from_slice(&peer.as_bytes()[..8]);
        let slot = mix(u64::from_le_bytes(id) ^ word(8)) % self.per_group as u64;
        let mut placement = Placement {
            group,
            bucket: 0,
            seed: word(16),
        };
        placement.bucket = self.bucket_of_slot(placement, slot as usize);
        placement
    }

    /// The bucket of the group's `slot`-th slot.
    pub fn bucket_of_slot(&self, placement: Placement, slot: usize) -> u16 {
        let bucket = mix(placement.seed ^ (slot as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15))
            % self.buckets as u64;
        u16::try_from(bucket).unwrap_or(0)
    }

    pub fn buckets(&self) -> usize {
        self.buckets
    }
}

/// SplitMix64's finalizer: a fast bijective mixer.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use peergrid_proto::Identity;

    #[test]
    fn groups_follow_the_rule() {
        let g = NetGroups::default();
        assert_eq!(g.group_of("203.0.113.7:7400"), "v4 203.0.0.0/16");
        assert_eq!(g.group_of("203.0.200.1:1"), "v4 203.0.0.0/16");
        assert_eq!(g.group_of("[2001:db8:1:2::5]:7400"), "v6 2001:db8::/32");
        assert_eq!(g.group_of("127.0.0.1:7001"), "ep 127.0.0.1:7001");
        assert_eq!(g.group_of("10.1.2.3:7001"), "ep 10.1.2.3:7001");
        assert_eq!(g.group_of("node.example:7400"), "host");
        let by_ip = NetGroups {
            local: LocalGrouping::Address,
            ..g
        };
        assert_eq!(by_ip.group_of("127.0.0.2:9"), "ip 127.0.0.2");
        let strict = NetGroups {
            local: LocalGrouping::Prefix,
            ipv4_prefix: 24,
            ..g
        };
        assert_eq!(strict.group_of("192.168.1.7:9"), "v4 192.168.1.0/24");
    }

    #[test]
    fn one_group_reaches_few_buckets_and_the_secret_decides_which() {
        let bucketing = Bucketing::new([1; 32], NetGroups::default(), 512, 4);
        let other = Bucketing::new([2; 32], NetGroups::default(), 512, 4);
        let mut mine = std::collections::HashSet::new();
        let mut theirs = std::collections::HashSet::new();
        let mut groups = std::collections::HashSet::new();
        for port in 0..300u16 {
            let peer = Identity::from_secret([port as u8; 32]).peer_id();
            let addr = format!("203.0.{}.{}:{port}", port % 7, port % 200)
                .parse()
                .ok();
            let p = bucketing.place(&peer, addr);
            mine.insert(p.bucket);
            groups.insert(p.group);
            theirs.insert(other.place(&peer, addr).bucket);
        }
        assert_eq!(groups.len(), 1);
        assert!(mine.len() <= 4, "{mine:?}");
        assert!(theirs.len() <= 4);
        assert_ne!(mine, theirs);
    }
}
