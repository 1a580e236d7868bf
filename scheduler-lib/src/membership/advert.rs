//! Signed adverts: what a node says about itself, signed by its own key.
//!
//! An [`Advert`] travels as the payload of a [`pb::SignedEnvelope`] signed
//! with [`Domain::Advert`]. [`verify_advert`] checks, in this order and
//! before it decodes anything: the payload size, the puzzle on the claimed
//! key (two hashes), the signature, and only then decodes the payload and
//! checks that the advert names the key that signed it and stays within
//! bounds. Every failure is the fault of whoever handed us the envelope —
//! an honest relayer verifies before it relays — so the caller charges it to
//! the relayer ([`AdvertError::blames_relayer`]).

use std::net::SocketAddr;
use std::sync::Arc;

use peergrid_proto::envelope::{self, EnvelopeError};
use peergrid_proto::{Domain, Identity, PeerId, pb, puzzle};
use prost::Message;

/// Largest advert payload accepted, in bytes.
pub const MAX_ADVERT_BYTES: usize = 2048;
/// Most listen addresses an advert may name.
pub const MAX_ADDRS: usize = 8;
/// Longest address, feature name or version string, in bytes.
pub const MAX_FIELD_BYTES: usize = 128;
/// Most WebAssembly feature names an advert may list.
pub const MAX_FEATURES: usize = 32;

/// What a node tells the grid about itself (the domain form of
/// `pb::Advert`; the public key comes from the signer).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Advert {
    /// Where the node serves gRPC, `ip:port`; the first is its primary
    /// address (bucketing, probes). At least one, at most [`MAX_ADDRS`].
    pub addrs: Vec<String>,
    /// Job slots free when the advert was signed.
    pub free_slots: u32,
    /// Total job slots.
    pub total_slots: u32,
    /// CPU cores on the machine.
    pub cores: u32,
    /// Memory the node lets one job use, in bytes.
    pub max_job_memory_bytes: u64,
    /// The largest limits the node accepts for one job.
    pub max_limits: Option<pb::JobLimits>,
    /// WebAssembly features the node's runtime enables.
    pub wasm_features: Vec<String>,
    /// Software version, e.g. `peergrid 0.1.0`.
    pub version: String,
    /// Sequence number: a higher one replaces a lower one, never the reverse.
    /// Use [`Advert::next_seq`].
    pub seq: u64,
    /// When the advert was signed, Unix milliseconds. Receivers judge the
    /// node's liveness by the age of its newest advert.
    pub timestamp_unix_ms: u64,
}

impl Advert {
    /// An advert for `addrs` signed at `now_ms`, with `seq` from
    /// [`Advert::next_seq`]`(previous_seq, now_ms)`; capacity fields zero.
    pub fn new(addrs: Vec<String>, previous_seq: Option<u64>, now_ms: u64) -> Self {
        Self {
            addrs,
            seq: Self::next_seq(previous_seq, now_ms),
            timestamp_unix_ms: now_ms,
            ..Self::default()
        }
    }

    /// The sequence number of the next advert: the signing time in Unix
    /// milliseconds, or `previous + 1` if the clock has not moved past it.
    ///
    /// Why the clock: a node that restarts without its state (a wiped data
    /// directory, a new container) still publishes a number higher than
    /// every advert it signed before — as long as its clock did not go back
    /// by more than it was down — so it rejoins at once instead of being
    /// ignored until its old adverts expire. Within one run, `previous + 1`
    /// keeps the sequence strictly increasing even if the clock steps back.
    pub fn next_seq(previous: Option<u64>, now_ms: u64) -> u64 {
        match previous {
            Some(p) => now_ms.max(p.saturating_add(1)),
            None => now_ms,
        }
    }

    fn to_pb(&self, public_key: [u8; 32]) -> pb::Advert {
        pb::Advert {
            public_key: public_key.to_vec(),
            addrs: self.addrs.clone(),
            free_slots: self.free_slots,
            total_slots: self.total_slots,
            cores: self.cores,
            max_job_memory_bytes: self.max_job_memory_bytes,
            max_limits: self.max_limits,
            wasm_features: self.wasm_features.clone(),
            version: self.version.clone(),
            seq: self.seq,
            timestamp_unix_ms: self.timestamp_unix_ms,
        }
    }

    fn from_pb(advert: pb::Advert) -> Self {
        Self {
            addrs: advert.addrs,
            free_slots: advert.free_slots,
            total_slots: advert.total_slots,
            cores: advert.cores,
            max_job_memory_bytes: advert.max_job_memory_bytes,
            max_limits: advert.max_limits,
            wasm_features: advert.wasm_features,
            version: advert.version,
            seq: advert.seq,
            timestamp_unix_ms: advert.timestamp_unix_ms,
        }
    }
}

/// Signs `advert` as `identity` (domain [`Domain::Advert`]); the advert's
/// public key is the identity's.
pub fn sign_advert(identity: &Identity, advert: &Advert) -> pb::SignedEnvelope {
    let payload = advert.to_pb(identity.public_key()).encode_to_vec();
    envelope::sign(identity, Domain::Advert, payload)
}

/// An advert whose envelope checked out: signed by the key it names, and
/// that key solves the puzzle.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedAdvert {
    /// The author's peer id (SHA-256 of its key).
    pub peer: PeerId,
    /// The author's ed25519 public key.
    pub public_key: [u8; 32],
    /// The decoded advert.
    pub advert: Advert,
    /// The envelope exactly as received, to relay without re-encoding.
    pub envelope: pb::SignedEnvelope,
    /// The primary address parsed as `ip:port`, if it is one.
    pub(crate) primary: Option<SocketAddr>,
}

impl VerifiedAdvert {
    /// The primary listen address (the first one).
    pub fn primary_addr(&self) -> &str {
        self.advert.addrs.first().map_or("", String::as_str)
    }
}

/// Checks an advert envelope: size, the puzzle at `min_puzzle_bits`, the
/// signature (before decoding), then that the advert names its signer's key
/// and stays within bounds.
pub fn verify_advert(
    envelope: &pb::SignedEnvelope,
    min_puzzle_bits: u32,
) -> Result<VerifiedAdvert, AdvertError> {
    if envelope.payload.len() > MAX_ADVERT_BYTES {
        return Err(AdvertError::TooLarge(envelope.payload.len()));
    }
    let key: [u8; 32] = envelope
        .public_key
        .as_slice()
        .try_into()
        .map_err(|_| EnvelopeError::BadPublicKey(envelope.public_key.len()))?;
    let bits = puzzle::difficulty(&key);
    if bits < min_puzzle_bits {
        return Err(AdvertError::WeakPuzzle {
            bits,
            required: min_puzzle_bits,
        });
    }
    let verified = envelope::verify(envelope, Domain::Advert)?;
    let decoded =
        pb::Advert::decode(verified.payload).map_err(|e| AdvertError::Malformed(e.to_string()))?;
    if decoded.public_key.as_slice() != key.as_slice() {
        return Err(AdvertError::KeyMismatch);
    }
    let advert = Advert::from_pb(decoded);
    check_bounds(&advert)?;
    let primary = advert.addrs.first().and_then(|a| a.parse().ok());
    Ok(VerifiedAdvert {
        peer: verified.signer,
        public_key: key,
        advert,
        envelope: envelope.clone(),
        primary,
    })
}

fn check_bounds(advert: &Advert) -> Result<(), AdvertError> {
    if advert.addrs.is_empty() {
        return Err(AdvertError::Invalid("no listen address"));
    }
    if advert.addrs.len() > MAX_ADDRS {
        return Err(AdvertError::Invalid("too many addresses"));
    }
    if advert.wasm_features.len() > MAX_FEATURES {
        return Err(AdvertError::Invalid("too many wasm features"));
    }
    let long = |s: &String| s.is_empty() || s.len() > MAX_FIELD_BYTES;
    if advert.addrs.iter().any(long) || advert.wasm_features.iter().any(long) {
        return Err(AdvertError::Invalid("empty or overlong address or feature"));
    }
    if advert.version.len() > MAX_FIELD_BYTES {
        return Err(AdvertError::Invalid("overlong version"));
    }
    Ok(())
}

/// Why an advert envelope was refused. Each of these is the relayer's fault
/// (see [`AdvertError::blames_relayer`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AdvertError {
    /// The envelope is malformed or its signature does not verify.
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    /// The payload is over [`MAX_ADVERT_BYTES`].
    #[error("advert payload is {0} bytes, over the limit")]
    TooLarge(usize),
    /// The key does not solve the network's puzzle.
    #[error("key solves the puzzle at {bits} bits, the network requires {required}")]
    WeakPuzzle {
        /// Leading zero bits of the key's double hash.
        bits: u32,
        /// The network's puzzle parameter.
        required: u32,
    },
    /// The signed payload is not an `Advert`.
    #[error("advert payload does not decode: {0}")]
    Malformed(String),
    /// The advert names another key than the one that signed it.
    #[error("advert names a different public key than its signer")]
    KeyMismatch,
    /// A field is missing or out of bounds.
    #[error("invalid advert: {0}")]
    Invalid(&'static str),
}

impl AdvertError {
    /// Whether the peer that handed us this envelope is to blame: always,
    /// since a relayer must verify what it relays. (Adverts that are merely
    /// old or out of date are not errors; they are skipped silently.)
    pub fn blames_relayer(&self) -> bool {
        true
    }
}

/// How a [`Membership`](super::Membership) checks the adverts it receives.
///
/// [`Verifier`] (the default) calls [`verify_advert`] every time. A
/// simulation that runs thousands of nodes in one process can share one
/// memoizing verifier between them, so each distinct envelope is checked
/// once by the real code instead of once per node.
pub trait VerifyAdvert {
    /// Verifies `envelope` (see [`verify_advert`]).
    fn verify(
        &mut self,
        envelope: &pb::SignedEnvelope,
        min_puzzle_bits: u32,
    ) -> Result<Arc<VerifiedAdvert>, AdvertError>;
}

/// The default [`VerifyAdvert`]: [`verify_advert`] on every envelope.
#[derive(Debug, Clone, Copy, Default)]
pub struct Verifier;

impl VerifyAdvert for Verifier {
    fn verify(
        &mut self,
        envelope: &pb::SignedEnvelope,
        min_puzzle_bits: u32,
    ) -> Result<Arc<VerifiedAdvert>, AdvertError> {
        verify_advert(envelope, min_puzzle_bits).map(Arc::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(bits: u32) -> Identity {
        puzzle::grind(bits, |_| {})
    }

    fn advert(now: u64) -> Advert {
        Advert {
            free_slots: 2,
            total_slots: 4,
            cores: 8,
            version: "peergrid test".into(),
            ..Advert::new(vec!["127.0.0.1:7400".into()], None, now)
        }
    }

    #[test]
    fn round_trip() {
        let me = id(4);
        let signed = sign_advert(&me, &advert(1000));
        let v = verify_advert(&signed, 4).unwrap();
        assert_eq!(v.peer, me.peer_id());
        assert_eq!(v.advert, advert(1000));
        assert_eq!(v.primary_addr(), "127.0.0.1:7400");
        assert_eq!(v.primary, Some("127.0.0.1:7400".parse().unwrap()));
    }

    #[test]
    fn forged_signature_is_refused() {
        let me = id(0);
        let mut signed = sign_advert(&me, &advert(1000));
        signed.payload[3] ^= 1;
        let err = verify_advert(&signed, 0).unwrap_err();
        assert!(matches!(
            err,
            AdvertError::Envelope(EnvelopeError::BadSignature(_))
        ));
        assert!(err.blames_relayer());
    }

    #[test]
    fn advert_naming_another_key_is_refused() {
        let (me, other) = (id(0), id(0));
        let mut pb_advert = advert(1000).to_pb(other.public_key());
        pb_advert.seq = 5;
        let signed = envelope::sign(&me, Domain::Advert, pb_advert.encode_to_vec());
        assert_eq!(
            verify_advert(&signed, 0).unwrap_err(),
            AdvertError::KeyMismatch
        );
    }

    #[test]
    fn weak_puzzle_is_refused_before_the_signature() {
        let weak = loop {
            let candidate = Identity::generate();
            if puzzle::difficulty(&candidate.public_key()) < 6 {
                break candidate;
            }
        };
        let mut signed = sign_advert(&weak, &advert(1000));
        signed.signature = vec![0; 64]; // not even checked
        assert!(matches!(
            verify_advert(&signed, 6).unwrap_err(),
            AdvertError::WeakPuzzle { required: 6, .. }
        ));
    }

    #[test]
    fn other_domains_and_bounds_are_refused() {
        let me = id(0);
        let payload = advert(1000).to_pb(me.public_key()).encode_to_vec();
        let as_job = envelope::sign(&me, Domain::Job, payload);
        assert!(matches!(
            verify_advert(&as_job, 0).unwrap_err(),
            AdvertError::Envelope(_)
        ));
        let no_addr = Advert {
            addrs: vec![],
            ..advert(1)
        };
        assert_eq!(
            verify_advert(&sign_advert(&me, &no_addr), 0).unwrap_err(),
            AdvertError::Invalid("no listen address")
        );
        let huge = Advert {
            version: "x".repeat(MAX_ADVERT_BYTES),
            ..advert(1)
        };
        assert!(matches!(
            verify_advert(&sign_advert(&me, &huge), 0).unwrap_err(),
            AdvertError::TooLarge(_)
        ));
        let garbage = envelope::sign(&me, Domain::Advert, vec![0xff; 10]);
        assert!(matches!(
            verify_advert(&garbage, 0).unwrap_err(),
            AdvertError::Malformed(_)
        ));
    }

    #[test]
    fn next_seq_always_increases() {
        assert_eq!(Advert::next_seq(None, 500), 500);
        assert_eq!(Advert::next_seq(Some(400), 500), 500);
        assert_eq!(Advert::next_seq(Some(900), 500), 901);
    }
}
