//! The peer table: bounded, bucketed by network group, and kept in peer-id
//! order so gossip can reconcile it range by range.
//!
//! - Storage: keyed by the first 64 bits of the peer id (peer ids are
//!   SHA-256 outputs; the full id is compared on every hit, and a second id
//!   sharing the prefix — about 2^64 hashing to find — is refused), one
//!   sorted `Vec` per gossip range (the first ten bits): gossip asks for
//!   whole ranges, which are then found by index rather than by a tree
//!   search, and a peer is a binary search among the few entries of its
//!   range (about N/1024).
//! - Buckets ([`super::group`]): `buckets × bucket_size` slots; each
//!   network group reaches at most `buckets_per_group` secret buckets and
//!   holds at most `max_per_group` entries.
//! - Admission (Kademlia: old live peers before new ones): a newcomer takes
//!   a free place, or evicts an entry that is Dead, unreachable or Suspect
//!   (worst first, then oldest); it never evicts a live peer, so flooding a
//!   table with new identities cannot flush the peers it has.
//! - Range sums: for each range, the wrapping sum of a hash of (peer id,
//!   seq) over the entries this node relays, kept up to date on every
//!   change, so two nodes compare 1024 numbers to find where they differ.

use std::sync::Arc;

use peergrid_proto::PeerId;
use rand::Rng;

use super::MembershipConfig;
use super::advert::VerifiedAdvert;
use super::detector::{self, PeerState};
use super::group::{Bucketing, Placement, mix};

/// Number of gossip ranges: the first ten bits of a peer id.
pub const RANGES: usize = 1024;

const NO_BUCKET: u16 = u16::MAX;

/// The 64-bit table key of a peer id.
pub(crate) fn key_of(peer: &PeerId) -> u64 {
    let mut first = [0u8; 8];
    first.copy_from_slice(&peer.as_bytes()[..8]);
    u64::from_be_bytes(first)
}

/// The gossip range of a peer id (its first ten bits).
pub fn range_of(peer: &PeerId) -> usize {
    (key_of(peer) >> 54) as usize
}

/// The gossip range of a table key.
fn range_of_key(key: u64) -> usize {
    (key >> 54) as usize
}

/// The hash of one (peer, seq) summed into its range.
pub(crate) fn entry_hash(peer: &PeerId, seq: u64) -> u64 {
    let mut second = [0u8; 8];
    second.copy_from_slice(&peer.as_bytes()[8..16]);
    mix(key_of(peer) ^ mix(seq ^ u64::from_le_bytes(second)))
}

/// One peer as this node holds it.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub advert: Arc<VerifiedAdvert>,
    /// `key_of(&advert.peer)`, kept here so searches do not follow `advert`.
    key: u64,
    /// When a probe (or an anchor) verified its address; 0 if not yet.
    pub verified_since_ms: u64,
    bucket: u16,
    /// Consecutive failed contacts (gossip calls or probes).
    pub failures: u8,
    /// Counted in the range sums: not Dead by age.
    relayed: bool,
    /// The state last reported in an event.
    pub reported: PeerState,
}

impl Entry {
    pub fn seq(&self) -> u64 {
        self.advert.advert.seq
    }

    pub fn timestamp(&self) -> u64 {
        self.advert.advert.timestamp_unix_ms
    }

    pub fn is_self(&self) -> bool {
        self.bucket == NO_BUCKET
    }

    pub fn relayed(&self) -> bool {
        self.relayed
    }

    /// May a newcomer take this entry's place? How badly (higher: sooner).
    fn eviction_class(&self, config: &MembershipConfig, now_ms: u64) -> Option<u8> {
        if self.is_self() {
            return None;
        }
        match detector::state(config, self.timestamp(), self.failures, now_ms) {
            PeerState::Dead => Some(3),
            _ if self.failures > 0 => Some(2),
            PeerState::Suspect => Some(1),
            PeerState::Alive => None,
        }
    }
}

/// What happened to an advert offered to the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Offer {
    /// A peer the table did not hold.
    Inserted,
    /// A newer advert of a peer it held, in this state before.
    Updated { previous: PeerState },
    /// Not newer than what the table holds.
    Older,
    /// No room for it.
    Refused(Refusal),
}

/// Why the table refused a newcomer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Its bucket is full of live peers.
    BucketFull,
    /// Its network group already holds `max_per_group` live peers.
    GroupFull,
    /// Another peer id shares its 64-bit key.
    Collision,
}

/// What a sweep found about one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Swept {
    /// Its state changed (now in `entry.reported`).
    Changed { before: PeerState },
    /// It was Dead long enough and has been removed.
    Forgotten,
}

/// The entries by key: one `Vec` per gossip range, sorted by key.
struct Ranges {
    ranges: Vec<Vec<Entry>>,
    len: usize,
}

impl Ranges {
    fn new() -> Self {
        Self {
            ranges: (0..RANGES).map(|_| Vec::new()).collect(),
            len: 0,
        }
    }

    fn len(&self) -> usize {
        self.len
    }

    /// Where `key` is, or would be inserted, in its range.
    fn find(&self, key: u64) -> (usize, Result<usize, usize>) {
        let r = range_of_key(key);
        (r, self.ranges[r].binary_search_by_key(&key, |e| e.key))
    }

    fn get(&self, key: &u64) -> Option<&Entry> {
        match self.find(*key) {
            (r, Ok(i)) => self.ranges[r].get(i),
            _ => None,
        }
    }

    fn get_mut(&mut self, key: &u64) -> Option<&mut Entry> {
        match self.find(*key) {
            (r, Ok(i)) => self.ranges[r].get_mut(i),
            _ => None,
        }
    }

    /// Inserts `entry` under its key, replacing (and returning) any entry
    /// held there.
    fn insert(&mut self, entry: Entry) -> Option<Entry> {
        match self.find(entry.key) {
            (r, Ok(i)) => Some(std::mem::replace(&mut self.ranges[r][i], entry)),
            (r, Err(i)) => {
                self.ranges[r].insert(i, entry);
                self.len += 1;
                None
            }
        }
    }

    fn remove(&mut self, key: &u64) -> Option<Entry> {
        match self.find(*key) {
            (r, Ok(i)) => {
                self.len -= 1;
                Some(self.ranges[r].remove(i))
            }
            _ => None,
        }
    }

    /// All entries in key order.
    fn values(&self) -> impl Iterator<Item = &Entry> {
        self.ranges.iter().flatten()
    }

    /// The entries of one gossip range, in key order.
    fn range(&self, range: usize) -> &[Entry] {
        self.ranges.get(range).map_or(&[], Vec::as_slice)
    }

    /// Every entry once, in key order from the first key at or after
    /// `cursor`, wrapping around to the smallest key.
    fn from(&self, cursor: u64) -> impl Iterator<Item = &Entry> {
        let r = range_of_key(cursor);
        let split = self.ranges[r].partition_point(|e| e.key < cursor);
        let (before, after) = self.ranges[r].split_at(split);
        after
            .iter()
            .chain(self.ranges[r + 1..].iter().flatten())
            .chain(self.ranges[..r].iter().flatten())
            .chain(before)
    }
}

/// The bounded, bucketed peer table.
pub(crate) struct Table {
    map: Ranges,
    /// Per bucket: (key, group tag) of its entries.
    buckets: Vec<Vec<(u64, u32)>>,
    sums: Vec<u64>,
    bucketing: Bucketing,
    bucket_size: usize,
    max_per_group: usize,
    per_group: usize,
}

impl Table {
    pub fn new(config: &MembershipConfig, secret: [u8; 32]) -> Self {
        let bucketing = Bucketing::new(
            secret,
            config.groups,
            config.buckets,
            config.buckets_per_group,
        );
        Self {
            map: Ranges::new(),
            buckets: vec![Vec::new(); bucketing.buckets()],
            sums: vec![0; RANGES],
            bucketing,
            bucket_size: config.bucket_size.max(1),
            max_per_group: config.max_per_group.max(1),
            per_group: config.buckets_per_group.max(1),
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn sums(&self) -> &[u64] {
        &self.sums
    }

    pub fn get(&self, peer: &PeerId) -> Option<&Entry> {
        self.map
            .get(&key_of(peer))
            .filter(|e| e.advert.peer == *peer)
    }

    pub fn get_mut(&mut self, peer: &PeerId) -> Option<&mut Entry> {
        self.map
            .get_mut(&key_of(peer))
            .filter(|e| e.advert.peer == *peer)
    }

    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.map.values()
    }

    /// The relayed entries of one gossip range, in peer-id order.
    pub fn range(&self, range: usize) -> impl Iterator<Item = &Entry> {
        self.map.range(range).iter().filter(|e| e.relayed)
    }

    /// All entries of one gossip range (relayed or not, this node's own
    /// included), in peer-id order.
    pub fn range_entries(&self, range: usize) -> &[Entry] {
        self.map.range(range)
    }

    fn add_sum(&mut self, advert: &VerifiedAdvert, sign: bool) {
        let r = range_of(&advert.peer);
        let h = entry_hash(&advert.peer, advert.advert.seq);
        self.sums[r] = if sign {
            self.sums[r].wrapping_add(h)
        } else {
            self.sums[r].wrapping_sub(h)
        };
    }

    /// Sets (or replaces) this node's own entry: never evicted, always
    /// relayed, in no bucket.
    pub fn set_self(&mut self, advert: Arc<VerifiedAdvert>, now_ms: u64) {
        let key = key_of(&advert.peer);
        if let Some(old) = self.map.remove(&key)
            && old.relayed
        {
            self.add_sum(&old.advert, false);
        }
        self.add_sum(&advert, true);
        self.map.insert(Entry {
            key,
            advert,
            verified_since_ms: now_ms,
            bucket: NO_BUCKET,
            failures: 0,
            relayed: true,
            reported: PeerState::Alive,
        });
    }

    /// Offers a verified, fresh advert. `verified` admits it with its
    /// address already verified (an anchor).
    pub fn offer(
        &mut self,
        advert: Arc<VerifiedAdvert>,
        verified: bool,
        config: &MembershipConfig,
        now_ms: u64,
    ) -> Offer {
        let key = key_of(&advert.peer);
        let Some(existing) = self.map.get(&key) else {
            return self.insert(key, advert, verified, 0, config, now_ms);
        };
        if existing.advert.peer != advert.peer {
            return Offer::Refused(Refusal::Collision);
        }
        if advert.advert.seq <= existing.seq() {
            return Offer::Older;
        }
        if existing.is_self() {
            return Offer::Older; // only update_self replaces our own advert
        }
        let previous = existing.reported;
        let moved = existing.advert.advert.addrs != advert.advert.addrs;
        let since = if moved || verified {
            u64::from(verified) * now_ms
        } else {
            existing.verified_since_ms
        };
        if moved {
            // New addresses, maybe a new group: leave, and be admitted again.
            self.remove(&advert.peer);
            return match self.insert(key, advert, verified, since, config, now_ms) {
                Offer::Inserted => Offer::Updated { previous },
                other => other,
            };
        }
        let relayed = detector::relayed(config, advert.advert.timestamp_unix_ms, now_ms);
        let old = self
            .map
            .get(&key)
            .map(|e| (e.relayed, Arc::clone(&e.advert)));
        if let Some((true, old)) = old {
            self.add_sum(&old, false);
        }
        if relayed {
            self.add_sum(&advert, true);
        }
        if let Some(entry) = self.map.get_mut(&key) {
            entry.advert = advert;
            entry.verified_since_ms = since;
            entry.failures = 0;
            entry.relayed = relayed;
        }
        Offer::Updated { previous }
    }

    fn insert(
        &mut self,
        key: u64,
        advert: Arc<VerifiedAdvert>,
        verified: bool,
        since: u64,
        config: &MembershipConfig,
        now_ms: u64,
    ) -> Offer {
        let placement = self.bucketing.place(&advert.peer, advert.primary);
        if let Err(refusal) = self.make_room(placement, config, now_ms) {
            return Offer::Refused(refusal);
        }
        let relayed = detector::relayed(config, advert.advert.timestamp_unix_ms, now_ms);
        if relayed {
            self.add_sum(&advert, true);
        }
        self.buckets[usize::from(placement.bucket)].push((key, placement.group));
        let verified_since_ms = if verified { now_ms } else { since };
        self.map.insert(Entry {
            key,
            advert,
            verified_since_ms,
            bucket: placement.bucket,
            failures: 0,
            relayed,
            reported: PeerState::Alive,
        });
        Offer::Inserted
    }

    /// Frees a place for a newcomer at `placement`: within its group if the
    /// group is at its cap, within its bucket if the bucket is full.
    fn make_room(
        &mut self,
        placement: Placement,
        config: &MembershipConfig,
        now_ms: u64,
    ) -> Result<(), Refusal> {
        let group_members: Vec<u64> = self
            .group_buckets(placement)
            .into_iter()
            .flat_map(|b| self.buckets[usize::from(b)].iter())
            .filter(|(_, g)| *g == placement.group)
            .map(|(k, _)| *k)
            .collect();
        if group_members.len() >= self.max_per_group {
            let victim = self
                .worst(group_members.iter().copied(), config, now_ms)
                .ok_or(Refusal::GroupFull)?;
            self.remove_key(victim);
        }
        let bucket = &self.buckets[usize::from(placement.bucket)];
        if bucket.len() >= self.bucket_size {
            let keys: Vec<u64> = bucket.iter().map(|(k, _)| *k).collect();
            let victim = self
                .worst(keys.into_iter(), config, now_ms)
                .ok_or(Refusal::BucketFull)?;
            self.remove_key(victim);
        }
        Ok(())
    }

    /// The buckets a group can reach.
    fn group_buckets(&self, placement: Placement) -> Vec<u16> {
        let mut buckets: Vec<u16> = (0..self.per_group)
            .map(|slot| self.bucketing.bucket_of_slot(placement, slot))
            .collect();
        buckets.sort_unstable();
        buckets.dedup();
        buckets
    }

    /// The entry a newcomer should replace among `keys`, if any may go.
    fn worst(
        &self,
        keys: impl Iterator<Item = u64>,
        config: &MembershipConfig,
        now_ms: u64,
    ) -> Option<u64> {
        keys.filter_map(|k| {
            let e = self.map.get(&k)?;
            let class = e.eviction_class(config, now_ms)?;
            Some((class, std::cmp::Reverse(e.timestamp()), k))
        })
        .max()
        .map(|(_, _, k)| k)
    }

    /// Removes a peer; returns its entry.
    pub fn remove(&mut self, peer: &PeerId) -> Option<Entry> {
        self.get(peer)?;
        self.remove_key(key_of(peer))
    }

    fn remove_key(&mut self, key: u64) -> Option<Entry> {
        let entry = self.map.remove(&key)?;
        if entry.relayed {
            self.add_sum(&entry.advert, false);
        }
        if let Some(bucket) = self.buckets.get_mut(usize::from(entry.bucket))
            && let Some(i) = bucket.iter().position(|(k, _)| *k == key)
        {
            bucket.swap_remove(i);
        }
        Some(entry)
    }

    /// Re-evaluates up to `count` entries from `cursor` on (wrapping) at
    /// `now_ms`: relay status, state changes and forgetting, each passed to
    /// `changed`. Returns the cursor to continue from.
    pub fn sweep(
        &mut self,
        cursor: u64,
        count: usize,
        config: &MembershipConfig,
        now_ms: u64,
        mut changed: impl FnMut(&Entry, Swept),
    ) -> u64 {
        let keys: Vec<u64> = self.map.from(cursor).map(|e| e.key).take(count).collect();
        for &key in &keys {
            let Some(entry) = self.map.get(&key) else {
                continue;
            };
            if entry.is_self() {
                continue;
            }
            let ts = entry.timestamp();
            if detector::forgotten(config, ts, now_ms) {
                if let Some(gone) = self.remove_key(key) {
                    changed(&gone, Swept::Forgotten);
                }
                continue;
            }
            let relayed = detector::relayed(config, ts, now_ms);
            if entry.relayed != relayed {
                let advert = Arc::clone(&entry.advert);
                self.add_sum(&advert, relayed);
            }
            let Some(entry) = self.map.get_mut(&key) else {
                continue;
            };
            entry.relayed = relayed;
            let state = detector::state(config, ts, entry.failures, now_ms);
            if state != entry.reported {
                let before = entry.reported;
                entry.reported = state;
                changed(entry, Swept::Changed { before });
            }
        }
        keys.last().map_or(0, |k| k.wrapping_add(1))
    }

    /// Looks at up to `limit` entries from `cursor` on (wrapping) for at
    /// most `want` that pass `pick`; returns their adverts and the cursor to
    /// continue from.
    pub fn scan_from(
        &self,
        cursor: u64,
        limit: usize,
        want: usize,
        mut pick: impl FnMut(&Entry) -> bool,
    ) -> (Vec<Arc<VerifiedAdvert>>, u64) {
        let mut next = cursor;
        let mut found = Vec::new();
        for e in self.map.from(cursor).take(limit) {
            if found.len() >= want {
                break;
            }
            next = e.key.wrapping_add(1);
            if pick(e) {
                found.push(Arc::clone(&e.advert));
            }
        }
        (found, next)
    }

    /// A random entry, by Bitcoin Core's rule: a random non-empty bucket,
    /// then a random entry in it — so a group crowded into its few buckets
    /// is picked no more often than a bucket of honest strangers.
    pub fn random(&self, rng: &mut impl Rng, nonempty: &[u16]) -> Option<&Entry> {
        if nonempty.is_empty() {
            return None;
        }
        let bucket = &self.buckets[usize::from(nonempty[rng.gen_range(0..nonempty.len())])];
        let (key, _) = bucket.get(rng.gen_range(0..bucket.len().max(1)))?;
        self.map.get(key)
    }

    /// The indexes of the non-empty buckets.
    pub fn nonempty_buckets(&self) -> Vec<u16> {
        (0..self.buckets.len())
            .filter(|&b| !self.buckets[b].is_empty())
            .filter_map(|b| u16::try_from(b).ok())
            .collect()
    }

    /// The group tag of a held peer.
    pub fn group_of(&self, entry: &Entry) -> u32 {
        self.buckets
            .get(usize::from(entry.bucket))
            .and_then(|b| b.iter().find(|(k, _)| *k == key_of(&entry.advert.peer)))
            .map_or(u32::MAX, |(_, g)| *g)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::membership::advert::{Advert, sign_advert, verify_advert};
    use peergrid_proto::Identity;

    pub(crate) fn advert_at(id: &Identity, addr: &str, seq: u64) -> Arc<VerifiedAdvert> {
        let advert = Advert {
            seq,
            timestamp_unix_ms: seq,
            ..Advert::new(vec![addr.into()], None, seq)
        };
        Arc::new(verify_advert(&sign_advert(id, &advert), 0).unwrap())
    }

    fn ids(n: usize, salt: u8) -> Vec<Identity> {
        (0..n)
            .map(|i| {
                let mut s = [salt; 32];
                s[..8].copy_from_slice(&(i as u64).to_le_bytes());
                Identity::from_secret(s)
            })
            .collect()
    }

    fn config() -> MembershipConfig {
        MembershipConfig {
            buckets: 8,
            bucket_size: 4,
            buckets_per_group: 2,
            max_per_group: 3,
            ..MembershipConfig::default()
        }
    }

    #[test]
    fn stale_seq_never_replaces_newer() {
        let c = config();
        let mut t = Table::new(&c, [7; 32]);
        let id = &ids(1, 1)[0];
        let now = 1_000_000;
        assert_eq!(
            t.offer(advert_at(id, "1.2.3.4:1", now), false, &c, now),
            Offer::Inserted
        );
        let sums = t.sums().to_vec();
        assert_eq!(
            t.offer(advert_at(id, "1.2.3.4:1", now - 5), false, &c, now),
            Offer::Older
        );
        assert_eq!(
            t.offer(advert_at(id, "1.2.3.4:1", now), false, &c, now),
            Offer::Older
        );
        assert_eq!(t.sums(), &sums[..]);
        assert!(matches!(
            t.offer(advert_at(id, "1.2.3.4:1", now + 1), false, &c, now),
            Offer::Updated { .. }
        ));
        assert_eq!(t.get(&id.peer_id()).unwrap().seq(), now + 1);
        assert_ne!(t.sums(), &sums[..]);
    }

    #[test]
    fn one_group_is_capped_and_cannot_evict_live_peers() {
        let c = config();
        let mut t = Table::new(&c, [7; 32]);
        let now = 1_000_000;
        let mut admitted = 0;
        for (i, id) in ids(50, 2).iter().enumerate() {
            let addr = format!("203.0.{}.{}:7400", i % 250, i % 7);
            if t.offer(advert_at(id, &addr, now), false, &c, now) == Offer::Inserted {
                admitted += 1;
            }
        }
        assert_eq!(admitted, c.max_per_group);
        // Once they age (Suspect), newcomers of the group replace them.
        let later = now + c.suspect_after_ms;
        let fresh = &ids(1, 3)[0];
        assert_eq!(
            t.offer(advert_at(fresh, "203.0.9.9:1", later), false, &c, later),
            Offer::Inserted
        );
        assert_eq!(t.len(), c.max_per_group);
    }

    #[test]
    fn full_bucket_keeps_long_lived_peers() {
        let c = MembershipConfig {
            buckets: 1,
            bucket_size: 3,
            max_per_group: 100,
            ..config()
        };
        let mut t = Table::new(&c, [7; 32]);
        let now = 1_000_000;
        let old = ids(3, 4);
        for (i, id) in old.iter().enumerate() {
            let a = format!("{}.1.1.1:1", 20 + i);
            assert_eq!(
                t.offer(advert_at(id, &a, now), false, &c, now),
                Offer::Inserted
            );
        }
        let newcomer = &ids(1, 5)[0];
        assert_eq!(
            t.offer(
                advert_at(newcomer, "99.1.1.1:1", now + 10),
                false,
                &c,
                now + 10
            ),
            Offer::Refused(Refusal::BucketFull)
        );
        // One old peer stops answering: the newcomer may take its place.
        t.get_mut(&old[1].peer_id()).unwrap().failures = 1;
        assert_eq!(
            t.offer(
                advert_at(newcomer, "99.1.1.1:1", now + 10),
                false,
                &c,
                now + 10
            ),
            Offer::Inserted
        );
        assert!(t.get(&old[1].peer_id()).is_none());
        assert!(t.get(&old[0].peer_id()).is_some());
    }

    #[test]
    fn entries_are_in_peer_id_order_and_cursors_wrap_once() {
        let c = MembershipConfig::default();
        let mut t = Table::new(&c, [3; 32]);
        let now = 10_000_000;
        for (i, id) in ids(200, 8).iter().enumerate() {
            let addr = format!("{}.{}.9.9:1", 20 + i / 200, i % 200);
            assert_eq!(
                t.offer(advert_at(id, &addr, now), false, &c, now),
                Offer::Inserted
            );
        }
        let all: Vec<PeerId> = t.entries().map(|e| e.advert.peer).collect();
        assert_eq!(all.len(), 200);
        assert!(all.windows(2).all(|w| w[0].as_bytes() < w[1].as_bytes()));
        for r in 0..RANGES {
            let here: Vec<PeerId> = t.range(r).map(|e| e.advert.peer).collect();
            assert!(here.iter().all(|p| range_of(p) == r));
            assert_eq!(here.len(), all.iter().filter(|p| range_of(p) == r).count());
        }
        // From a cursor in the middle: every entry once, wrapping around.
        let cursor = key_of(&all[120]);
        let (seen, next) = t.scan_from(cursor, 1000, 1000, |_| true);
        let seen: Vec<PeerId> = seen.iter().map(|a| a.peer).collect();
        assert_eq!(seen[..80], all[120..]);
        assert_eq!(seen[80..], all[..120]);
        assert_eq!(next, key_of(&all[119]) + 1);
        let (three, next) = t.scan_from(cursor + 1, 1000, 3, |_| true);
        assert_eq!(three.len(), 3);
        assert_eq!(three[0].peer, all[121]);
        assert_eq!(next, key_of(&all[123]) + 1);
    }

    #[test]
    fn sums_track_relayed_entries_and_sweep_forgets_the_dead() {
        let c = MembershipConfig::default();
        let mut t = Table::new(&c, [1; 32]);
        let now = 10_000_000;
        let peers = ids(20, 6);
        for (i, id) in peers.iter().enumerate() {
            t.offer(
                advert_at(id, &format!("{}.9.9.9:1", 30 + i), now),
                false,
                &c,
                now,
            );
        }
        let expected = |t: &Table| {
            let mut sums = vec![0u64; RANGES];
            for e in t.entries().filter(|e| e.relayed()) {
                let r = range_of(&e.advert.peer);
                sums[r] = sums[r].wrapping_add(entry_hash(&e.advert.peer, e.seq()));
            }
            sums
        };
        assert_eq!(t.sums(), &expected(&t)[..]);
        let mut dead = 0;
        let later = now + c.dead_after_ms;
        t.sweep(0, 100, &c, later, |e, _| {
            dead += usize::from(e.reported == PeerState::Dead)
        });
        assert_eq!(dead, 20);
        assert!(t.sums().iter().all(|&s| s == 0));
        let mut gone = 0;
        t.sweep(0, 100, &c, later + c.forget_after_ms, |_, s| {
            gone += usize::from(s == Swept::Forgotten)
        });
        assert_eq!(gone, 20);
        assert_eq!(t.len(), 0);
    }
}
