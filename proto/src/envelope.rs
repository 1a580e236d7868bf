//! Signed envelopes: the author's signature over the exact bytes that travel.
//!
//! An envelope carries `payload` (an encoded protobuf message), the author's
//! public key and an ed25519 signature over `domain || payload`. The domain
//! ([`Domain`]) names the kind of message, so a signature made for one kind
//! can never be accepted as another. [`verify`] checks the signature *before*
//! anyone decodes the payload.
//!
//! [`sign_many`] signs many payloads with one signature over the root of a
//! Merkle tree ([`crate::merkle`]); each envelope then carries its proof, and
//! [`verify`] checks either form. The roots it has checked are remembered
//! (bounded), so the envelopes of one batch after the first cost a few
//! hashes, not a signature check each.

use std::collections::HashMap;
use std::sync::Mutex;

use ed25519_dalek::{Signature, VerifyingKey};

use crate::hash::Sha256Hash;
use crate::identity::{Identity, PeerId};
use crate::merkle;
use crate::pb::SignedEnvelope;

/// The kind of message an envelope holds; its tag is prefixed to the payload
/// before signing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Domain {
    /// A `JobSpec` signed by its submitter.
    Job,
    /// A `ResultClaim` signed by the worker that ran the job.
    Result,
    /// A membership `Advert` signed by the node it describes.
    Advert,
    /// A Hello challenge signed by the worker that answers it.
    Hello,
}

/// The prefix of a signature over a Merkle root (see [`sign_many`]). Not a
/// [`Domain`]: the leaves under the root carry their own domains.
pub const BATCH_TAG: &[u8] = b"peergrid/batch/v1\0";

impl Domain {
    /// The domain-separation prefix (ends with a NUL so no tag is a prefix of
    /// another).
    pub fn tag(self) -> &'static [u8] {
        match self {
            Domain::Job => b"peergrid/job/v1\0",
            Domain::Result => b"peergrid/result/v1\0",
            Domain::Advert => b"peergrid/advert/v1\0",
            Domain::Hello => b"peergrid/hello/v1\0",
        }
    }

    fn message(self, payload: &[u8]) -> Vec<u8> {
        let tag = self.tag();
        let mut message = Vec::with_capacity(tag.len() + payload.len());
        message.extend_from_slice(tag);
        message.extend_from_slice(payload);
        message
    }
}

/// ed25519 signatures made and checked by this process, for benchmarks and
/// metrics: `(made, checked)`. A batch root checked once and then found in
/// the cache counts once.
pub fn signature_counts() -> (u64, u64) {
    (
        SIGNED.load(std::sync::atomic::Ordering::Relaxed),
        CHECKED.load(std::sync::atomic::Ordering::Relaxed),
    )
}

/// Signatures made (see [`signature_counts`]).
static SIGNED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
/// Signatures checked (see [`signature_counts`]).
static CHECKED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Counts one signature made or checked.
fn count(counter: &std::sync::atomic::AtomicU64) {
    counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// Signs `payload` as a message of kind `domain`.
pub fn sign(author: &Identity, domain: Domain, payload: Vec<u8>) -> SignedEnvelope {
    count(&SIGNED);
    let signature = author.sign_raw(&domain.message(&payload));
    SignedEnvelope {
        payload,
        public_key: author.public_key().to_vec(),
        signature: signature.to_vec(),
        proof: None,
    }
}

/// Signs every `(domain, payload)` with one signature over the root of their
/// Merkle tree: the envelopes come back in order, each with its proof. One
/// payload is signed plainly (no proof), and none gives none.
pub fn sign_many(author: &Identity, messages: Vec<(Domain, Vec<u8>)>) -> Vec<SignedEnvelope> {
    if messages.len() <= 1 {
        return messages
            .into_iter()
            .map(|(domain, payload)| sign(author, domain, payload))
            .collect();
    }
    let leaves: Vec<_> = messages
        .iter()
        .map(|(domain, payload)| merkle::leaf(*domain, payload))
        .collect();
    let Some((root, proofs)) = merkle::build(&leaves) else {
        return Vec::new();
    };
    count(&SIGNED);
    let signature = author.sign_raw(&batch_message(&root)).to_vec();
    let public_key = author.public_key().to_vec();
    messages
        .into_iter()
        .zip(proofs)
        .map(|((_, payload), proof)| SignedEnvelope {
            payload,
            public_key: public_key.clone(),
            signature: signature.clone(),
            proof: Some(proof),
        })
        .collect()
}

/// What a root signature signs.
fn batch_message(root: &Sha256Hash) -> Vec<u8> {
    let mut message = Vec::with_capacity(BATCH_TAG.len() + root.len());
    message.extend_from_slice(BATCH_TAG);
    message.extend_from_slice(root);
    message
}

/// An envelope whose signature checked out.
#[derive(Debug, Clone, Copy)]
pub struct Verified<'a> {
    /// The peer id of the key that signed.
    pub signer: PeerId,
    /// The signed payload, still encoded.
    pub payload: &'a [u8],
}

/// Checks the envelope's signature for `domain`; returns the signer and the
/// still-encoded payload.
pub fn verify(envelope: &SignedEnvelope, domain: Domain) -> Result<Verified<'_>, EnvelopeError> {
    let key: [u8; 32] = envelope
        .public_key
        .as_slice()
        .try_into()
        .map_err(|_| EnvelopeError::BadPublicKey(envelope.public_key.len()))?;
    let (key, signer) = verifying_key(&key)?;
    let signature: [u8; 64] = envelope
        .signature
        .as_slice()
        .try_into()
        .map_err(|_| EnvelopeError::BadSignatureLength(envelope.signature.len()))?;
    match &envelope.proof {
        None => {
            count(&CHECKED);
            key.verify_strict(&domain.message(&envelope.payload), &signature.into())
                .map_err(|_| EnvelopeError::BadSignature(domain))?;
        }
        Some(proof) => {
            let leaf = merkle::leaf(domain, &envelope.payload);
            let root = merkle::root(leaf, proof)?;
            verify_root(&key, &root, &signature)
                .map_err(|()| EnvelopeError::BadSignature(domain))?;
        }
    }
    Ok(Verified {
        signer,
        payload: &envelope.payload,
    })
}

/// Checks `signature` over the batch `root` by `key`, or finds that it was
/// checked before.
fn verify_root(key: &VerifyingKey, root: &Sha256Hash, signature: &[u8; 64]) -> Result<(), ()> {
    let lock = || {
        ROOTS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    };
    let id = (key.to_bytes(), *root);
    if lock().get(&id) == Some(signature) {
        return Ok(());
    }
    count(&CHECKED);
    key.verify_strict(&batch_message(root), &Signature::from_bytes(signature))
        .map_err(|_| ())?;
    let mut roots = lock();
    if roots.len() >= ROOT_CACHE_CAPACITY {
        roots.clear();
    }
    roots.insert(id, *signature);
    Ok(())
}

/// Batch roots whose signature checked out, by (key, root): the other
/// envelopes of a batch then cost their proof's hashes only. A hit needs the
/// very signature that was checked. Bounded like [`KEYS`].
static ROOTS: std::sync::LazyLock<Mutex<RootCache>> =
    std::sync::LazyLock::new(|| Mutex::new(HashMap::new()));

/// (Key bytes, root) → the signature that was checked over them.
type RootCache = HashMap<([u8; 32], Sha256Hash), [u8; 64]>;

/// Most roots [`ROOTS`] holds.
const ROOT_CACHE_CAPACITY: usize = 4096;

/// Keys recently seen in envelopes, decompressed. Parsing a key (a point
/// decompression, a square root in the field) is a third of checking a
/// signature, and a grid sees the same few peers' keys over and over.
/// Bounded: when full it is emptied, so keys that rotate on every message
/// cost what they cost without a cache and nothing more.
static KEYS: std::sync::LazyLock<Mutex<KeyCache>> =
    std::sync::LazyLock::new(|| Mutex::new(HashMap::new()));

/// Key bytes → the parsed key and its peer id.
type KeyCache = HashMap<[u8; 32], (VerifyingKey, PeerId)>;

/// Most keys [`KEYS`] holds.
const KEY_CACHE_CAPACITY: usize = 4096;

/// `bytes` as a verifying key with its peer id, from the cache or parsed
/// (and then cached).
fn verifying_key(bytes: &[u8; 32]) -> Result<(VerifyingKey, PeerId), EnvelopeError> {
    let lock = || {
        KEYS.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    };
    if let Some(known) = lock().get(bytes) {
        return Ok(*known);
    }
    let key = VerifyingKey::from_bytes(bytes).map_err(|_| EnvelopeError::InvalidPublicKey)?;
    let known = (key, PeerId::from_public_key(&key));
    let mut keys = lock();
    if keys.len() >= KEY_CACHE_CAPACITY {
        keys.clear();
    }
    keys.insert(*bytes, known);
    Ok(known)
}

/// Why an envelope was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// The public key field is not 32 bytes.
    #[error("envelope public key is {0} bytes, expected 32")]
    BadPublicKey(usize),
    /// The public key bytes are not a valid ed25519 point.
    #[error("envelope public key is not a valid ed25519 key")]
    InvalidPublicKey,
    /// The signature field is not 64 bytes.
    #[error("envelope signature is {0} bytes, expected 64")]
    BadSignatureLength(usize),
    /// The signature does not verify for this domain and payload.
    #[error("envelope signature does not verify as a {0:?} message")]
    BadSignature(Domain),
    /// The envelope's Merkle proof is malformed.
    #[error("envelope {0}")]
    BadProof(#[from] merkle::ProofError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_cache_stays_bounded_and_answers_like_a_fresh_parse() {
        let id = Identity::generate();
        let signed = sign(&id, Domain::Job, b"payload".to_vec());
        for _ in 0..2 {
            // Parsed, then from the cache: the same answer.
            let verified = verify(&signed, Domain::Job).expect("valid");
            assert_eq!(verified.signer, id.peer_id());
        }
        let mut forged = signed.clone();
        forged.signature[0] ^= 1;
        assert_eq!(
            verify(&forged, Domain::Job).unwrap_err(),
            EnvelopeError::BadSignature(Domain::Job)
        );
        for _ in 0..KEY_CACHE_CAPACITY + 10 {
            let other = Identity::generate();
            let signed = sign(&other, Domain::Job, b"x".to_vec());
            assert!(verify(&signed, Domain::Job).is_ok());
        }
        let cached = KEYS.lock().map(|k| k.len()).unwrap_or(usize::MAX);
        assert!(cached <= KEY_CACHE_CAPACITY, "{cached} keys cached");
    }

    #[test]
    fn one_signature_covers_a_batch_and_each_envelope_verifies_alone() {
        let id = Identity::generate();
        let messages: Vec<_> = (0..7u8)
            .map(|i| {
                (
                    if i % 2 == 0 {
                        Domain::Job
                    } else {
                        Domain::Result
                    },
                    vec![i; 10],
                )
            })
            .collect();
        let signed = sign_many(&id, messages.clone());
        assert_eq!(signed.len(), 7);
        for ((domain, payload), env) in messages.iter().zip(&signed) {
            assert!(env.proof.is_some());
            assert_eq!(env.signature, signed[0].signature, "one signature");
            let verified = verify(env, *domain).expect("verifies");
            assert_eq!(
                (verified.signer, verified.payload),
                (id.peer_id(), &payload[..])
            );
            // Its leaf is bound to its domain, checked or cached.
            let other = if *domain == Domain::Job {
                Domain::Result
            } else {
                Domain::Job
            };
            assert_eq!(
                verify(env, other).unwrap_err(),
                EnvelopeError::BadSignature(other)
            );
        }
        // A tampered payload, a proof moved to another envelope, a forged
        // signature: refused, although the root is in the cache.
        let mut tampered = signed[2].clone();
        tampered.payload[0] ^= 1;
        assert!(verify(&tampered, Domain::Job).is_err());
        let mut moved = signed[2].clone();
        moved.proof = signed[4].proof.clone();
        assert!(verify(&moved, Domain::Job).is_err());
        let mut forged = signed[2].clone();
        forged.signature[5] ^= 1;
        assert!(verify(&forged, Domain::Job).is_err());
        // Another author's key on the same root and signature.
        let mut swapped = signed[2].clone();
        swapped.public_key = Identity::generate().public_key().to_vec();
        assert!(verify(&swapped, Domain::Job).is_err());
        // A plain signature stays plain.
        assert!(
            sign_many(&id, vec![(Domain::Job, vec![1])])[0]
                .proof
                .is_none()
        );
        assert!(sign_many(&id, Vec::new()).is_empty());
    }

    #[test]
    fn a_malformed_proof_is_named() {
        let id = Identity::generate();
        let mut env =
            sign_many(&id, vec![(Domain::Job, vec![1]), (Domain::Job, vec![2])]).remove(0);
        if let Some(proof) = env.proof.as_mut() {
            proof.siblings[0].truncate(3);
        }
        assert_eq!(
            verify(&env, Domain::Job).unwrap_err(),
            EnvelopeError::BadProof(merkle::ProofError::BadSibling(3))
        );
    }

    #[test]
    fn tampered_payload_fails() {
        let id = Identity::generate();
        let mut env = sign(&id, Domain::Job, vec![1, 2, 3]);
        env.payload[0] ^= 1;
        assert_eq!(
            verify(&env, Domain::Job).unwrap_err(),
            EnvelopeError::BadSignature(Domain::Job)
        );
    }

    #[test]
    fn other_domain_fails() {
        let id = Identity::generate();
        let env = sign(&id, Domain::Result, vec![9; 40]);
        assert!(verify(&env, Domain::Result).is_ok());
        assert!(verify(&env, Domain::Job).is_err());
    }

    #[test]
    fn advert_domain_is_separate() {
        assert_eq!(Domain::Advert.tag(), b"peergrid/advert/v1\0");
        let id = Identity::generate();
        let env = sign(&id, Domain::Advert, vec![5; 20]);
        assert_eq!(verify(&env, Domain::Advert).unwrap().signer, id.peer_id());
        assert!(verify(&env, Domain::Job).is_err());
        assert!(verify(&env, Domain::Result).is_err());
        let job = sign(&id, Domain::Job, vec![5; 20]);
        assert!(verify(&job, Domain::Advert).is_err());
    }

    #[test]
    fn swapped_key_fails() {
        let (a, b) = (Identity::generate(), Identity::generate());
        let mut env = sign(&a, Domain::Job, vec![7; 10]);
        env.public_key = b.public_key().to_vec();
        assert!(verify(&env, Domain::Job).is_err());
    }

    #[test]
    fn malformed_fields_are_named() {
        let id = Identity::generate();
        let mut env = sign(&id, Domain::Job, vec![]);
        env.signature.truncate(10);
        assert_eq!(
            verify(&env, Domain::Job).unwrap_err(),
            EnvelopeError::BadSignatureLength(10)
        );
        env.public_key = vec![0; 5];
        assert_eq!(
            verify(&env, Domain::Job).unwrap_err(),
            EnvelopeError::BadPublicKey(5)
        );
    }
}
