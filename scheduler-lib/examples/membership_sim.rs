//! A deterministic simulation of peergrid's membership: thousands of
//! simulated nodes, each a real [`Membership`], gossiping through direct
//! function calls — no sockets, a simulated clock (one round = one gossip
//! interval = 1 s), one seeded RNG.
//!
//! ```sh
//! cargo run --release -p scheduler-lib --example membership_sim            # 1,000 nodes: ~50 s
//! cargo run --release -p scheduler-lib --example membership_sim -- --large # + 10,000 nodes: hours, 9+ GB (BENCHMARKS.md)
//! SIM_PROGRESS=1 cargo run --release -p scheduler-lib --example membership_sim -- --large-only
//! cargo run --release -p scheduler-lib --example membership_sim -- --nodes 3000  # the 10,000-node suite at any size
//! cargo run --release -p scheduler-lib --example membership_sim -- --large-only --attacks-only  # 10,000 nodes, no dead node: ~45 min
//! ```
//!
//! The 1,000-node suite: convergence from one or two bootstrap addresses
//! per node; a node killed (rounds until every node holds it Suspect, then
//! Dead) and restarted without state (rounds until its new advert is Alive
//! everywhere); attack (a), one IP with 1,000 identities flooding a victim;
//! attack (b), 10% of the nodes the attacker's, pushing 2,000 sybil adverts
//! from one /16 in every call. Each scenario starts from a fresh network.
//!
//! `--large` (or `--large-only`, `--nodes N`) adds the same scenarios at
//! 10,000 nodes on one network, converged once ([`one_network_suite`]):
//! convergence alone is 10^8 admissions through the real code and as many
//! (node, peer) table entries, so it is not repeated per scenario, and two
//! copies would not fit in memory. In order: convergence; a node killed
//! and restarted; attack (b) against one victim, every tenth node (in
//! joining order, each already a converged member) turning attacker for
//! 20 rounds and then honest again; attack (a) against another victim,
//! 1,000 new identities on one IP joining. Heartbeats keep every node busy
//! throughout (N^2 adverts per 30 s refresh interval, 3.3 million
//! admissions per round at 10,000 nodes), which is what takes the time:
//! about 35 s of CPU per round at 10,000 nodes, and the dead-node scenario
//! alone waits out the configured 180 s, so the whole suite is hours.
//!
//! What runs for real: every message is a `pb::GossipRequest` /
//! `pb::GossipResponse` built and consumed by the library, every advert a
//! node receives goes through `Membership`'s admission (puzzle, signature,
//! freshness, seq, buckets, caps), probes are answered by checking that the
//! node at the address holds the key. One shortcut: all nodes share one
//! memoizing verifier ([`Memo`]), so each distinct envelope is verified by
//! the real `verify_advert` once, and a later copy is recognised by
//! comparing all its bytes with the verified one — the answer a real
//! verification would give, without 10^8 ed25519 verifications (an hour of
//! CPU). Identities solve the puzzle at 4 bits (16 key generations each)
//! to keep the set-up short; the cost at the default 16 bits is printed from
//! the grinding rate measured here.

use std::cell::RefCell;
use std::collections::HashMap;
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use peergrid_proto::{Identity, PeerId, pb, puzzle};
use prost::Message;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use scheduler_lib::membership::{
    Advert, AdvertError, Event, Membership, MembershipConfig, MembershipError, NetGroups,
    PeerState, Target, VerifiedAdvert, VerifyAdvert, sign_advert, verify_advert,
};

/// Puzzle bits of the simulated network.
const SIM_BITS: u32 = 4;
/// Simulated start time (Unix ms).
const T0: u64 = 1_800_000_000_000;
/// One round.
const ROUND_MS: u64 = 1_000;
/// Rounds an attack lasts.
const ATTACK_ROUNDS: usize = 20;

type Memoized = Result<Arc<VerifiedAdvert>, AdvertError>;

/// One verifier shared by all simulated nodes: the real `verify_advert`
/// once per distinct envelope (keyed by signature, compared in full).
#[derive(Clone, Default)]
struct Memo(Rc<RefCell<MemoMap>>);

/// Signature → (the verified envelope, its verdict).
type MemoMap = HashMap<Vec<u8>, (pb::SignedEnvelope, Memoized)>;

impl VerifyAdvert for Memo {
    fn verify(&mut self, envelope: &pb::SignedEnvelope, bits: u32) -> Memoized {
        let mut map = self.0.borrow_mut();
        if let Some((held, result)) = map.get(envelope.signature.as_slice())
            && held == envelope
        {
            return result.clone();
        }
        let result = verify_advert(envelope, bits).map(Arc::new);
        map.insert(
            envelope.signature.clone(),
            (envelope.clone(), result.clone()),
        );
        result
    }
}

/// Who a simulated node works for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Honest,
    /// Gossips normally, targets the victim every round, and pushes sybil
    /// adverts in every call it makes.
    Attacker,
}

struct Node {
    m: Membership<Memo>,
    identity: Identity,
    addr: String,
    up: bool,
    role: Role,
}

/// Message and byte counters.
#[derive(Debug, Clone, Copy, Default)]
struct Traffic {
    messages: u64,
    bytes: u64,
}

struct Net {
    config: MembershipConfig,
    nodes: Vec<Node>,
    by_addr: HashMap<String, usize>,
    memo: Memo,
    rng: StdRng,
    now: u64,
    traffic: Traffic,
    /// Sybil adverts the attackers push (scenario b).
    flood: Vec<pb::SignedEnvelope>,
    victim: Option<usize>,
    /// The first error a node's own advert met (a bug if ever set).
    error: Option<MembershipError>,
}

fn advert_for(identity: &Identity, addr: &str, prev: Option<u64>, now: u64) -> pb::SignedEnvelope {
    let advert = Advert {
        free_slots: 2,
        total_slots: 2,
        cores: 2,
        max_job_memory_bytes: 256 << 20,
        version: "peergrid 0.1.0".into(),
        ..Advert::new(vec![addr.to_string()], prev, now)
    };
    sign_advert(identity, &advert)
}

impl Net {
    fn new(config: MembershipConfig, seed: u64) -> Self {
        Self {
            config,
            nodes: Vec::new(),
            by_addr: HashMap::new(),
            memo: Memo::default(),
            rng: StdRng::seed_from_u64(seed),
            now: T0,
            traffic: Traffic::default(),
            flood: Vec::new(),
            victim: None,
            error: None,
        }
    }

    /// Adds a node; returns its index.
    fn add(
        &mut self,
        identity: Identity,
        addr: String,
        role: Role,
        bootstraps: &[usize],
    ) -> Result<usize, MembershipError> {
        let mut secret = [0u8; 32];
        self.rng.fill(&mut secret);
        // Nodes started at different times: their heartbeats are spread out.
        let signed = self.now - self.rng.gen_range(0..self.config.refresh_interval_ms);
        let me = advert_for(&identity, &addr, None, signed);
        let mut m = Membership::with_verifier(
            self.config.clone(),
            me,
            secret,
            self.now,
            self.memo.clone(),
        )?;
        for &b in bootstraps {
            m.add_bootstrap(self.nodes[b].addr.clone());
        }
        let i = self.nodes.len();
        self.by_addr.insert(addr.clone(), i);
        self.nodes.push(Node {
            m,
            identity,
            addr,
            up: true,
            role,
        });
        Ok(i)
    }

    /// Restarts node `i` without its state: a new membership, a fresh
    /// advert (seq = now), one bootstrap address.
    fn restart(&mut self, i: usize, bootstrap: usize) -> Result<(), MembershipError> {
        let mut secret = [0u8; 32];
        self.rng.fill(&mut secret);
        let node = &self.nodes[i];
        let me = advert_for(&node.identity, &node.addr, None, self.now);
        let mut m = Membership::with_verifier(
            self.config.clone(),
            me,
            secret,
            self.now,
            self.memo.clone(),
        )?;
        m.add_bootstrap(self.nodes[bootstrap].addr.clone());
        self.nodes[i].m = m;
        self.nodes[i].up = true;
        Ok(())
    }

    fn count<M: Message>(&mut self, message: &M) {
        self.traffic.messages += 1;
        self.traffic.bytes += message.encoded_len() as u64;
    }

    /// One gossip round: every live node ticks, then calls its targets.
    fn round(&mut self) {
        self.now += ROUND_MS;
        let mut order: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].up)
            .collect();
        order.shuffle(&mut self.rng);
        for i in order {
            let events = self.nodes[i].m.tick(self.now);
            self.handle(i, events);
            let mut targets = self.nodes[i].m.gossip_targets(&mut self.rng, self.now);
            if self.nodes[i].role == Role::Attacker
                && let Some(v) = self.victim
            {
                targets.push(Target {
                    peer: Some(self.nodes[v].m.peer_id()),
                    addr: self.nodes[v].addr.clone(),
                });
            }
            for target in targets {
                self.exchange(i, &target);
            }
        }
    }

    /// One gossip exchange from node `i` to `target` (one or two calls).
    fn exchange(&mut self, i: usize, target: &Target) {
        let now = self.now;
        let reachable = self.by_addr.get(&target.addr).copied().filter(|&j| {
            self.nodes[j].up && target.peer.is_none_or(|p| p == self.nodes[j].m.peer_id())
        });
        let Some(j) = reachable else {
            let events = self.nodes[i].m.on_failure(target, now);
            self.handle(i, events);
            return;
        };
        let mut request = self.nodes[i].m.make_request();
        if self.nodes[i].role == Role::Attacker && !self.flood.is_empty() {
            let cap = self.config.max_adverts_per_message;
            let flood: Vec<pb::SignedEnvelope> = self
                .flood
                .choose_multiple(&mut self.rng, cap)
                .cloned()
                .collect();
            request.adverts = flood;
        }
        loop {
            self.count(&request);
            let from = self.nodes[i].addr.clone();
            let inbound = self.nodes[j].m.on_request(&from, request, now);
            self.handle(j, inbound.events);
            let Ok(response) = inbound.reply else {
                return;
            };
            self.count(&response);
            let outbound = self.nodes[i].m.on_response(target, response, now);
            self.handle(i, outbound.events);
            match outbound.follow_up {
                Some(next) => request = next,
                None => return,
            }
        }
    }

    /// What a node's caller does with its events: answer probes (the node
    /// at the address must be up and hold the key), re-sign adverts.
    fn handle(&mut self, i: usize, events: Vec<Event>) {
        for event in events {
            match event {
                Event::Probe { peer, addr } => {
                    let ok = self
                        .by_addr
                        .get(&addr)
                        .is_some_and(|&j| self.nodes[j].up && self.nodes[j].m.peer_id() == peer);
                    let more = self.nodes[i].m.probe_result(&peer, ok, self.now);
                    self.handle(i, more);
                }
                Event::RefreshAdvert => {
                    let node = &self.nodes[i];
                    let prev = node.m.my_advert().advert.seq;
                    let env = advert_for(&node.identity, &node.addr, Some(prev), self.now);
                    if let Err(e) = self.nodes[i].m.update_self(env, self.now) {
                        self.error.get_or_insert(e);
                    }
                }
                _ => {}
            }
        }
    }

    /// Fails if a node's own advert was refused along the way.
    fn check(&mut self) -> Result<(), MembershipError> {
        self.error.take().map_or(Ok(()), Err)
    }

    /// Whether every live honest node holds every live node's advert.
    fn converged(&self) -> bool {
        let live = self.nodes.iter().filter(|n| n.up).count();
        self.nodes
            .iter()
            .filter(|n| n.up)
            .all(|n| n.m.len() + 1 >= live)
    }
}

/// Grinds `n` identities at `bits` from `rng`; returns them and the
/// attempts made.
fn identities(n: usize, bits: u32, rng: &mut StdRng) -> (Vec<Identity>, u64) {
    let mut attempts = 0;
    let ids = (0..n)
        .map(|_| {
            let mut last = 0;
            let id = puzzle::grind_with(bits, rng, |a| last = a);
            attempts += last;
            id
        })
        .collect();
    (ids, attempts)
}

/// A random public IPv4 endpoint not yet used.
fn public_addr(rng: &mut StdRng, used: &HashMap<String, usize>) -> String {
    loop {
        let a: u8 = rng.gen_range(1..=223);
        if [10, 100, 127, 169, 172, 192, 198, 203].contains(&a) {
            continue;
        }
        let addr = format!(
            "{a}.{}.{}.{}:7400",
            rng.r#gen::<u8>(),
            rng.r#gen::<u8>(),
            rng.gen_range(1..255)
        );
        if !used.contains_key(&addr) {
            return addr;
        }
    }
}

/// Adds `ids` as nodes with random public addresses, each bootstrapping
/// from one or two earlier nodes.
fn populate(
    net: &mut Net,
    ids: Vec<Identity>,
    role: impl Fn(usize) -> Role,
) -> Result<(), MembershipError> {
    for (k, id) in ids.into_iter().enumerate() {
        let addr = public_addr(&mut net.rng, &net.by_addr);
        let existing = net.nodes.len();
        let mut boots = Vec::new();
        if existing > 0 {
            for _ in 0..net.rng.gen_range(1..=2) {
                boots.push(net.rng.gen_range(0..existing));
            }
        }
        net.add(id, addr, role(k), &boots)?;
    }
    Ok(())
}

/// With `SIM_PROGRESS` set: one line per round on stderr.
fn progress(net: &Net, phase: &str, round: u64, start: Instant) {
    if std::env::var_os("SIM_PROGRESS").is_some() {
        let lens: Vec<usize> = net
            .nodes
            .iter()
            .filter(|x| x.up)
            .map(|x| x.m.len())
            .collect();
        let min = lens.iter().min().copied().unwrap_or(0);
        let avg = lens.iter().sum::<usize>() as f64 / lens.len().max(1) as f64;
        eprintln!(
            "  {phase} round {round}: peers known min {min}, mean {avg:.1}; {} messages so far; {:.1} s",
            net.traffic.messages,
            start.elapsed().as_secs_f64()
        );
    }
}

/// Rounds until convergence (at most `max`), or `None`.
fn converge(net: &mut Net, max: u64) -> Option<u64> {
    let start = Instant::now();
    for r in 1..=max {
        net.round();
        progress(net, "convergence", r, start);
        if net.converged() {
            return Some(r);
        }
    }
    None
}

struct Row {
    scenario: String,
    nodes: usize,
    result: String,
    detail: String,
}

type Sim<T> = Result<T, MembershipError>;

fn convergence(ids: &[Identity], n: usize, seed: u64, rows: &mut Vec<Row>) -> Sim<Option<Net>> {
    let start = Instant::now();
    let mut net = Net::new(sim_config(), seed);
    populate(&mut net, ids[..n].to_vec(), |_| Role::Honest)?;
    let rounds = converge(&mut net, 60);
    net.check()?;
    let t = net.traffic;
    let per_node_round = t.messages as f64 / n as f64 / rounds.unwrap_or(60) as f64;
    eprintln!(
        "  {n} nodes: {rounds:?} rounds, {} messages, {:.1} MB, {:.1} s",
        t.messages,
        t.bytes as f64 / 1e6,
        start.elapsed().as_secs_f64()
    );
    rows.push(Row {
        scenario: "convergence: every node knows every advert".into(),
        nodes: n,
        result: rounds.map_or("not in 60 rounds".into(), |r| format!("{r} rounds")),
        detail: format!(
            "{} messages ({per_node_round:.1} per node per round), {:.0} KB per node",
            t.messages,
            t.bytes as f64 / 1e3 / n as f64
        ),
    });
    Ok(rounds.map(|_| net))
}

/// Kills one node of a converged network; rounds until every other node
/// holds it Suspect, then Dead. Restarts it without state; rounds until
/// every node holds its new advert as Alive. Returns the node's index.
fn dead_node(net: &mut Net, rows: &mut Vec<Row>) -> Sim<usize> {
    let n = net.nodes.len();
    let dead = net.rng.gen_range(0..n);
    let peer = net.nodes[dead].m.peer_id();
    net.nodes[dead].up = false;
    let state_everywhere = |net: &Net, want: PeerState| {
        net.nodes
            .iter()
            .filter(|x| x.up)
            .all(|x| x.m.member(&peer, net.now).is_none_or(|m| m.state >= want))
    };
    let (mut suspect, mut gone) = (None, None);
    let start_traffic = net.traffic;
    let start = Instant::now();
    for r in 1..=400u64 {
        net.round();
        progress(net, "dead node", r, start);
        if suspect.is_none() && state_everywhere(net, PeerState::Suspect) {
            suspect = Some(r);
        }
        if state_everywhere(net, PeerState::Dead) {
            gone = Some(r);
            break;
        }
    }
    let steady = (net.traffic.messages - start_traffic.messages) as f64
        / (n - 1) as f64
        / gone.unwrap_or(400) as f64;
    rows.push(Row {
        scenario: "dead node: Suspect everywhere / Dead everywhere".into(),
        nodes: n,
        result: format!(
            "{} / {} rounds",
            suspect.map_or("-".into(), |r| r.to_string()),
            gone.map_or("-".into(), |r| r.to_string())
        ),
        detail: format!(
            "suspect_after {} s, dead_after {} s, heartbeat every {} s; {steady:.1} messages per node per round meanwhile",
            net.config.suspect_after_ms / 1000,
            net.config.dead_after_ms / 1000,
            net.config.refresh_interval_ms / 1000
        ),
    });
    let bootstrap = (dead + 1) % n;
    net.restart(dead, bootstrap)?;
    let seq = net.nodes[dead].m.my_advert().advert.seq;
    let mut back = None;
    for r in 1..=60u64 {
        net.round();
        progress(net, "restart", r, start);
        let everywhere = net.nodes.iter().filter(|x| x.up).all(|x| {
            x.m.peer_id() == peer
                || x.m
                    .member(&peer, net.now)
                    .is_some_and(|m| m.seq >= seq && m.state == PeerState::Alive)
        });
        if everywhere {
            back = Some(r);
            break;
        }
    }
    rows.push(Row {
        scenario: "restart without state: new seq Alive everywhere".into(),
        nodes: n,
        result: back.map_or("not in 60 rounds".into(), |r| format!("{r} rounds")),
        detail: "seq = signing time in Unix ms, so the restarted node outranks its old adverts"
            .into(),
    });
    net.check()?;
    Ok(dead)
}

/// The victim's table: (entries held, of which attacker-controlled, of
/// which in attacker groups, verified attacker entries, verified total).
fn victim_share(
    net: &Net,
    victim: usize,
    attacker_groups: &[String],
) -> (usize, usize, usize, usize, usize) {
    let groups = NetGroups::default();
    let attackers: std::collections::HashSet<PeerId> = net
        .nodes
        .iter()
        .filter(|x| x.role == Role::Attacker)
        .map(|x| x.m.peer_id())
        .chain(
            net.flood
                .iter()
                .filter_map(|e| PeerId::from_public_key_bytes(&e.public_key)),
        )
        .collect();
    let members = net.nodes[victim].m.members(net.now);
    let held = members.len();
    let bad = members
        .iter()
        .filter(|m| attackers.contains(&m.peer))
        .count();
    let in_groups = members
        .iter()
        .filter(|m| attacker_groups.contains(&groups.group_of(&m.addrs[0])))
        .count();
    let verified: Vec<_> = members
        .iter()
        .filter(|m| m.verified_since_ms.is_some())
        .collect();
    let verified_bad = verified
        .iter()
        .filter(|m| attackers.contains(&m.peer))
        .count();
    (held, bad, in_groups, verified_bad, verified.len())
}

/// Attack (a): one machine, one IP, 1,000 identities joins a converged
/// network and floods `victim`.
fn attack_one_ip(
    net: &mut Net,
    victim: usize,
    sybils: Vec<Identity>,
    rows: &mut Vec<Row>,
) -> Sim<()> {
    net.victim = Some(victim);
    let n_honest = net.nodes.len();
    for (k, id) in sybils.into_iter().enumerate() {
        let addr = format!("203.0.113.7:{}", 10_000 + k);
        net.add(id, addr, Role::Attacker, &[victim])?;
    }
    let n_sybils = net.nodes.len() - n_honest;
    let mut targets_bad = 0;
    let mut targets_all = 0;
    let start = Instant::now();
    for r in 1..=ATTACK_ROUNDS as u64 {
        net.round();
        progress(net, "attack (a)", r, start);
        let mut probe_rng = StdRng::seed_from_u64(net.now);
        for t in net.nodes[victim].m.gossip_targets(&mut probe_rng, net.now) {
            targets_all += 1;
            targets_bad += usize::from(t.addr.starts_with("203.0.113.7:"));
        }
    }
    let (held, bad, in_groups, vbad, vall) = victim_share(net, victim, &["v4 203.0.0.0/16".into()]);
    let groups = NetGroups::default();
    let leftover = net.nodes[victim]
        .m
        .members(net.now)
        .iter()
        .filter(|m| groups.group_of(&m.addrs[0]) == "v4 198.51.0.0/16")
        .count();
    let leftover = if leftover > 0 {
        format!("; the table also holds {leftover} sybils left from attack (b)")
    } else {
        String::new()
    };
    let attacker_stats = net.nodes[victim].m.stats();
    rows.push(Row {
        scenario: format!("attack (a): one IP, {n_sybils} identities, {ATTACK_ROUNDS} rounds"),
        nodes: n_honest + n_sybils,
        result: format!("{:.1}% of the victim's table", 100.0 * bad as f64 / held as f64),
        detail: format!(
            "{bad} of {held} entries ({in_groups} in the attacker's /16; refused {} for the group cap); verified: {vbad} of {vall}; gossip targets: {targets_bad} of {targets_all}{leftover}",
            attacker_stats.refused_group_full
        ),
    });
    net.check()
}

/// The address of the `k`-th sybil of attack (b), all in 198.51.0.0/16.
fn flood_addr(k: usize) -> String {
    format!("198.51.{}.{}:7400", k / 250, k % 250 + 1)
}

/// Attack (b): 10% of the nodes are the attacker's (addresses spread like
/// everyone's); they push thousands of sybil adverts from one /16 in every
/// call and call the victim every round. A fresh network: the attack runs
/// from the first round, while the network converges.
fn attack_tenth(
    ids: &[Identity],
    sybils: &[Identity],
    n: usize,
    seed: u64,
    rows: &mut Vec<Row>,
) -> Sim<()> {
    let mut net = Net::new(sim_config(), seed);
    populate(&mut net, ids[..n].to_vec(), |k| {
        if k % 10 == 9 {
            Role::Attacker
        } else {
            Role::Honest
        }
    })?;
    flood_attack(&mut net, 0, sybils, "", rows)
}

/// Attack (b) on a converged network: every tenth node (in joining order)
/// turns attacker for [`ATTACK_ROUNDS`] rounds, then honest again; the
/// sybils stop being re-signed.
fn attack_tenth_converged(
    net: &mut Net,
    victim: usize,
    sybils: &[Identity],
    rows: &mut Vec<Row>,
) -> Sim<()> {
    for (k, node) in net.nodes.iter_mut().enumerate() {
        if k % 10 == 9 && k != victim {
            node.role = Role::Attacker;
        }
    }
    flood_attack(net, victim, sybils, ", on the converged network", rows)?;
    for node in &mut net.nodes {
        node.role = Role::Honest;
    }
    net.flood.clear();
    net.victim = None;
    Ok(())
}

/// Runs attack (b) with the attacker nodes of `net` against `victim`.
fn flood_attack(
    net: &mut Net,
    victim: usize,
    sybils: &[Identity],
    note: &str,
    rows: &mut Vec<Row>,
) -> Sim<()> {
    let n = net.nodes.len();
    let attackers = net
        .nodes
        .iter()
        .filter(|x| x.role == Role::Attacker)
        .count();
    net.victim = Some(victim);
    let now = net.now;
    net.flood = sybils
        .iter()
        .enumerate()
        .map(|(k, id)| advert_for(id, &flood_addr(k), None, now))
        .collect();
    let start = Instant::now();
    for r in 1..=ATTACK_ROUNDS as u64 {
        net.round();
        progress(net, "attack (b)", r, start);
        // Keep the flood fresh: the attacker re-signs it every refresh.
        if (net.now - T0).is_multiple_of(net.config.refresh_interval_ms) {
            let now = net.now;
            net.flood = sybils
                .iter()
                .enumerate()
                .map(|(k, id)| advert_for(id, &flood_addr(k), Some(now - 1), now))
                .collect();
        }
    }
    let groups = NetGroups::default();
    let mut attacker_groups: Vec<String> = net
        .nodes
        .iter()
        .filter(|x| x.role == Role::Attacker)
        .map(|x| groups.group_of(&x.addr))
        .collect();
    attacker_groups.push("v4 198.51.0.0/16".into());
    let (held, bad, in_groups, vbad, vall) = victim_share(net, victim, &attacker_groups);
    rows.push(Row {
        scenario: format!(
            "attack (b): {attackers} attacker nodes (10%) flood {} sybil adverts from one /16, {ATTACK_ROUNDS} rounds{note}",
            sybils.len()
        ),
        nodes: n,
        result: format!(
            "{:.1}% of the victim's table outside attacker groups",
            100.0 * (held - in_groups) as f64 / held as f64
        ),
        detail: format!(
            "attacker-held {bad} of {held} ({in_groups} in attacker groups); verified: {vbad} attacker of {vall}"
        ),
    });
    net.check()
}

fn sim_config() -> MembershipConfig {
    MembershipConfig {
        puzzle_bits: SIM_BITS,
        ..MembershipConfig::default()
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("membership_sim: a node's own advert was refused: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The whole suite on one network of `n` nodes, converged once (at 10,000
/// nodes convergence alone is a quarter of an hour and 9 GB, so it is not
/// repeated for each scenario): convergence; a node killed and restarted;
/// attack (b) with every tenth node turning attacker against one victim;
/// then attack (a), 1,000 identities on one IP, against another victim.
fn one_network_suite(
    honest: &[Identity],
    extra: &[Identity],
    n: usize,
    seed: u64,
    with_dead_node: bool,
    rows: &mut Vec<Row>,
) -> Sim<()> {
    let t = Instant::now();
    eprintln!("{n} nodes, one network: convergence");
    let Some(mut net) = convergence(honest, n, seed, rows)? else {
        return Ok(());
    };
    // The dead-node scenario waits out `dead_after` (about 170 rounds):
    // `--attacks-only` skips it when only the attacks are wanted.
    let dead = if with_dead_node {
        eprintln!("  {:.1} s; dead node, restart", t.elapsed().as_secs_f64());
        dead_node(&mut net, rows)?
    } else {
        usize::MAX
    };
    let mut victims = (0..n).filter(|&i| i % 10 != 9 && i != dead);
    let (Some(victim_b), Some(victim_a)) = (victims.next(), victims.next()) else {
        return Ok(());
    };
    eprintln!("  {:.1} s; attack (b)", t.elapsed().as_secs_f64());
    attack_tenth_converged(&mut net, victim_b, &extra[1_000..3_000], rows)?;
    eprintln!("  {:.1} s; attack (a)", t.elapsed().as_secs_f64());
    attack_one_ip(&mut net, victim_a, extra[..1_000].to_vec(), rows)?;
    eprintln!("  {:.1} s", t.elapsed().as_secs_f64());
    Ok(())
}

/// Peak resident memory of this process (Linux `VmHWM`), if known.
fn peak_memory() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    Some(line.trim_start_matches("VmHWM:").trim().to_string())
}

fn run() -> Sim<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| args.iter().any(|a| a == name);
    let nodes: Option<usize> = args
        .iter()
        .position(|a| a == "--nodes")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok());
    let large_only = arg("--large-only") || nodes.is_some();
    let one_network = if arg("--large") || arg("--large-only") {
        Some(10_000)
    } else {
        nodes
    };
    let seed = 2026;
    let total = Instant::now();
    let mut rng = StdRng::seed_from_u64(seed);
    let big = one_network.unwrap_or(1_000).max(1_000);
    let t = Instant::now();
    let (ids, attempts) = identities(big + 3_000, SIM_BITS, &mut rng);
    let rate = attempts as f64 / t.elapsed().as_secs_f64();
    eprintln!(
        "{} identities at {SIM_BITS} bits: {attempts} attempts, {rate:.0} attempts/s",
        ids.len()
    );
    let (honest, extra) = ids.split_at(big);
    let mut rows = Vec::new();
    if !large_only {
        let t = Instant::now();
        eprintln!("convergence, dead node, restart: 1,000 nodes");
        if let Some(mut net) = convergence(honest, 1_000, seed, &mut rows)? {
            dead_node(&mut net, &mut rows)?;
        }
        eprintln!("  {:.1} s", t.elapsed().as_secs_f64());
        let t = Instant::now();
        eprintln!("attack (a)");
        if let Some(mut fresh) = convergence(honest, 1_000, seed, &mut Vec::new())? {
            attack_one_ip(&mut fresh, 0, extra[..1_000].to_vec(), &mut rows)?;
        }
        eprintln!("  {:.1} s", t.elapsed().as_secs_f64());
        eprintln!("attack (b)");
        let t = Instant::now();
        attack_tenth(honest, &extra[1_000..3_000], 1_000, seed + 1, &mut rows)?;
        eprintln!("  {:.1} s", t.elapsed().as_secs_f64());
    }
    if let Some(n) = one_network {
        let with_dead_node = !arg("--attacks-only");
        one_network_suite(honest, extra, n.max(3), seed, with_dead_node, &mut rows)?;
    }
    println!("| scenario | nodes | result | detail |");
    println!("|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {} |",
            r.scenario, r.nodes, r.result, r.detail
        );
    }
    let per_id = 2f64.powi(16) / rate;
    println!();
    println!(
        "Sybil cost at the default 16 bits: {per_id:.2} s of one core per identity ({:.0} core-minutes for 1,000), from {rate:.0} attempts/s measured here.",
        per_id * 1000.0 / 60.0
    );
    println!(
        "Whole run: {:.1} s, peak memory {}.",
        total.elapsed().as_secs_f64(),
        peak_memory().unwrap_or_else(|| "unknown".into())
    );
    Ok(())
}
