//! Signed envelopes: the author's signature over the exact bytes that travel.
//!
//! An envelope carries `payload` (an encoded protobuf message), the author's
//! public key and an ed25519 signature over `domain || payload`. The domain
//! ([`Domain`]) names the kind of message, so a signature made for one kind
//! can never be accepted as another. [`verify`] checks the signature *before*
//! anyone decodes the payload.

use std::collections::HashMap;
use std::sync::Mutex;

use ed25519_dalek::{Signature, VerifyingKey};

use crate::identity::{Identity, PeerId};
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

/// Signs `payload` as a message of kind `domain`.
pub fn sign(author: &Identity, domain: Domain, payload: Vec<u8>) -> SignedEnvelope {
    let signature = author.sign_raw(&domain.message(&payload));
    SignedEnvelope {
        payload,
        public_key: author.public_key().to_vec(),
        signature: signature.to_vec(),
    }
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
    let signature = Signature::from_slice(&envelope.signature)
        .map_err(|_| EnvelopeError::BadSignatureLength(envelope.signature.len()))?;
    key.verify_strict(&domain.message(&envelope.payload), &signature)
        .map_err(|_| EnvelopeError::BadSignature(domain))?;
    Ok(Verified {
        signer,
        payload: &envelope.payload,
    })
}

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
