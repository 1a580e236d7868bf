//! Membership on real sockets: eight nodes on their own 127.0.0.x addresses,
//! each started with one bootstrap address, learn the whole grid by gossip;
//! a killed node is removed, a restarted one returns; forged and replayed
//! adverts are ignored; a submit that knows only a bootstrap address gets a
//! verified result.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use peergrid_proto::{Identity, PeerId, pb, puzzle};
use peergrid_worker::{GridNode, LOCAL_PUZZLE_BITS, NodeConfig};
use scheduler_lib::membership::{Advert, Member, PeerState, sign_advert};
use scheduler_lib::{Job, Scheduler, SchedulerConfig};

const NODES: usize = 8;

fn ip(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + i as u8))
}

fn config(bootstrap: Option<String>) -> NodeConfig {
    let mut c = peergrid_tests::node_config();
    c.slots = 1;
    c.gossip.bootstrap = bootstrap.into_iter().collect();
    c
}

/// Node i bootstraps from node i-1 only: a chain, the hardest start.
async fn chain() -> Vec<GridNode> {
    let mut nodes: Vec<GridNode> = Vec::new();
    for i in 0..NODES {
        let bootstrap = nodes.last().map(|n| n.addr.to_string());
        nodes.push(
            GridNode::start_on(config(bootstrap), ip(i), None)
                .await
                .unwrap(),
        );
    }
    nodes
}

/// Alive peers `node` knows.
fn alive(node: &GridNode) -> Vec<PeerId> {
    node.node
        .gossip()
        .map(|g| g.members())
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m.state == PeerState::Alive)
        .map(|m| m.peer)
        .collect()
}

/// What `node` knows of `peer`, if anything.
fn member(node: &GridNode, peer: PeerId) -> Option<Member> {
    node.node
        .gossip()?
        .members()
        .into_iter()
        .find(|m| m.peer == peer)
}

async fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_nodes_converge_lose_a_dead_node_and_welcome_it_back() {
    let mut nodes = chain().await;
    wait_until(
        "every node knows the 7 others",
        Duration::from_secs(20),
        || nodes.iter().all(|n| alive(n).len() == NODES - 1),
    )
    .await;

    // Kill node 3: the others see it go.
    let victim = nodes[3].peer_id();
    let identity = nodes[3].identity.clone();
    let old_seq = member(&nodes[0], victim).unwrap().seq;
    nodes[3].kill();
    wait_until(
        "the killed node is no longer alive anywhere",
        Duration::from_secs(15),
        || {
            nodes
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != 3)
                .all(|(_, n)| !alive(n).contains(&victim))
        },
    )
    .await;

    // Restart it as itself, knowing only node 0: it returns with a higher seq.
    nodes[3] = GridNode::start_on(
        config(Some(nodes[0].addr.to_string())),
        ip(3),
        Some(identity),
    )
    .await
    .unwrap();
    wait_until(
        "the restarted node is alive everywhere again",
        Duration::from_secs(20),
        || {
            nodes
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != 3)
                .all(|(_, n)| alive(n).contains(&victim))
        },
    )
    .await;
    let new_seq = member(&nodes[0], victim).unwrap().seq;
    assert!(new_seq > old_seq, "rejoined with a higher sequence number");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_replayed_adverts_are_ignored() {
    let nodes = chain().await;
    wait_until("convergence", Duration::from_secs(20), || {
        nodes.iter().all(|n| alive(n).len() == NODES - 1)
    })
    .await;
    let target = &nodes[0];
    let about = nodes[5].peer_id();
    let known_seq = |n: &GridNode| member(n, about).map(|m| m.seq);
    let before = known_seq(target).unwrap();

    let now = scheduler_lib::ledger::unix_ms(std::time::SystemTime::now());
    let attacker = puzzle::grind(LOCAL_PUZZLE_BITS, |_| {});
    let attacker_advert = sign_advert(
        &attacker,
        &Advert::new(vec!["127.0.0.99:1".into()], None, now),
    );
    // A forged advert: node 5's key, a newer seq, signed by someone else.
    let mut forged = sign_advert(
        &attacker,
        &Advert::new(vec!["127.0.0.99:2".into()], Some(before), now),
    );
    forged.public_key = nodes[5].identity.public_key().to_vec();
    // A replayed old advert of node 5: a valid signature, an older seq.
    let old = sign_advert(
        &nodes[5].identity,
        &Advert::new(
            vec![nodes[5].addr.to_string()],
            None,
            before.saturating_sub(10_000),
        ),
    );

    let channel = tonic::transport::Channel::from_shared(format!("http://{}", target.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = pb::membership_client::MembershipClient::new(channel);
    for advert in [forged, old] {
        let request = pb::GossipRequest {
            from_advert: Some(attacker_advert.clone()),
            digest: None,
            adverts: vec![advert],
        };
        let _ = client.gossip(request).await; // refused or ignored: both fine
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = known_seq(target).unwrap();
    assert!(after >= before, "an older advert replaced a newer one");
    let about_member = member(target, about).unwrap();
    assert_eq!(
        about_member.addrs,
        vec![nodes[5].addr.to_string()],
        "the forged address was not taken"
    );

    // An identity that does not solve the puzzle is refused outright.
    let weak = loop {
        let id = Identity::generate();
        if puzzle::difficulty(&id.public_key()) < LOCAL_PUZZLE_BITS {
            break id;
        }
    };
    let weak_advert = sign_advert(&weak, &Advert::new(vec!["127.0.0.98:1".into()], None, now));
    let refused = client
        .gossip(pb::GossipRequest {
            from_advert: Some(weak_advert),
            digest: None,
            adverts: vec![],
        })
        .await;
    assert!(refused.is_err(), "a weak identity's gossip must be refused");
    assert!(!alive(target).contains(&weak.peer_id()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submit_that_knows_only_a_bootstrap_address_gets_a_verified_result() {
    let nodes = chain().await;
    wait_until("convergence", Duration::from_secs(20), || {
        nodes.iter().all(|n| alive(n).len() == NODES - 1)
    })
    .await;
    let scheduler = Scheduler::new(
        Identity::generate(),
        SchedulerConfig {
            puzzle_bits: LOCAL_PUZZLE_BITS,
            peers: vec![nodes[NODES - 1].addr.to_string()],
            job_timeout: Duration::from_secs(60),
            ..SchedulerConfig::default()
        },
    );
    let report = scheduler
        .submit(
            &Job::new(peergrid_jobs::PRIMES.wasm)
                .stdin(peergrid_jobs::PRIMES.sample_stdin)
                .replicas(3),
        )
        .await
        .unwrap();
    let output = report.verdict.accepted().expect("accepted");
    assert_eq!(output.stdout, peergrid_jobs::PRIMES.sample_stdout);
    assert_eq!(
        report.verdict.runs().count(),
        3,
        "three distinct workers found through gossip"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_rejoins_from_its_anchors_without_a_bootstrap() {
    let kept = tempfile::tempdir().unwrap();
    let mut nodes = vec![GridNode::start_on(config(None), ip(0), None).await.unwrap()];
    let boot = nodes[0].addr.to_string();
    let mut with_dir = config(Some(boot.clone()));
    with_dir.data_dir = kept.path().to_path_buf();
    nodes.push(GridNode::start_on(with_dir, ip(1), None).await.unwrap());
    for i in 2..4 {
        nodes.push(
            GridNode::start_on(config(Some(boot.clone())), ip(i), None)
                .await
                .unwrap(),
        );
    }
    let anchors = kept.path().join("anchors");
    wait_until(
        "converged and anchors saved",
        Duration::from_secs(20),
        || {
            nodes.iter().all(|n| alive(n).len() == 3)
                && std::fs::read_to_string(&anchors).is_ok_and(|t| !t.trim().is_empty())
        },
    )
    .await;

    let identity = nodes[1].identity.clone();
    let peer = nodes[1].peer_id();
    nodes[1].kill();
    // Same identity and data directory, no bootstrap address at all.
    let mut restart = config(None);
    restart.data_dir = kept.path().to_path_buf();
    nodes[1] = GridNode::start_on(restart, ip(1), Some(identity))
        .await
        .unwrap();
    wait_until(
        "the node found its way back through its anchors",
        Duration::from_secs(20),
        || {
            alive(&nodes[1]).len() == 3
                && nodes
                    .iter()
                    .enumerate()
                    .all(|(i, n)| i == 1 || alive(n).contains(&peer))
        },
    )
    .await;
}
