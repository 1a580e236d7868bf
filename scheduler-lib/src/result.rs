//! Checking a worker's signed result before it may count as a vote.

use peergrid_proto::{Domain, PeerId, Sha256Hash, envelope, pb, sha256};
use prost::Message;

use crate::outcome::{JobFailure, VoteKey, outcome_from_claim};

/// What the submitter expects a result for one replica to say.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    /// The worker the envelope was addressed to.
    pub worker: PeerId,
    /// The job.
    pub job_id: &'a Sha256Hash,
    /// The nonce of the envelope sent to that worker.
    pub nonce: &'a [u8; 16],
    /// The module's hash.
    pub module_hash: &'a Sha256Hash,
    /// The stdin's hash.
    pub input_hash: &'a Sha256Hash,
}

/// A result whose signature, signer and bindings all checked out.
#[derive(Debug, Clone)]
pub struct VerifiedResult {
    /// The worker that signed it.
    pub worker: PeerId,
    /// How the run ended.
    pub result: Result<(), JobFailure>,
    /// The job's stdout.
    pub output: Vec<u8>,
    /// The job's stderr (capped by the worker).
    pub stderr: Vec<u8>,
    /// The decoded claim.
    pub claim: pb::ResultClaim,
    /// The signed envelope exactly as received (the evidence).
    pub envelope: pb::SignedEnvelope,
    /// What the result is compared by.
    pub key: VoteKey,
}

/// Why a result was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResultRejected {
    /// The envelope's signature is malformed or does not verify.
    #[error("result signature invalid: {0}")]
    Signature(#[from] envelope::EnvelopeError),
    /// A valid signature, but by a key other than the worker asked.
    #[error("result signed by {signer}, not by the worker asked ({expected})")]
    WrongSigner {
        /// Who signed.
        signer: PeerId,
        /// Who should have.
        expected: PeerId,
    },
    /// The signed payload is not a valid `ResultClaim`.
    #[error("result claim is malformed: {0}")]
    Malformed(String),
    /// The claim is about another job, worker, nonce, module or input.
    #[error("result claim does not match the job: {0} differs")]
    Mismatch(&'static str),
    /// The returned bytes do not hash to what the claim signed.
    #[error("returned {0} does not match the signed hash")]
    HashMismatch(&'static str),
}

/// Verifies a worker's reply: signature first, then the signer, then every
/// binding (job, worker, nonce, module, input) and the hashes of the bytes.
pub fn verify_result(
    signed: pb::SignedEnvelope,
    output: Vec<u8>,
    stderr: Vec<u8>,
    expected: &Expected<'_>,
) -> Result<VerifiedResult, ResultRejected> {
    let verified = envelope::verify(&signed, Domain::Result)?;
    if verified.signer != expected.worker {
        return Err(ResultRejected::WrongSigner {
            signer: verified.signer,
            expected: expected.worker,
        });
    }
    let claim = pb::ResultClaim::decode(verified.payload)
        .map_err(|e| ResultRejected::Malformed(e.to_string()))?;
    let checks: [(&'static str, &[u8], &[u8]); 5] = [
        ("job_id", &claim.job_id, expected.job_id),
        ("worker_id", &claim.worker_id, expected.worker.as_bytes()),
        ("nonce", &claim.nonce, expected.nonce),
        ("module_sha256", &claim.module_sha256, expected.module_hash),
        ("input_sha256", &claim.input_sha256, expected.input_hash),
    ];
    if let Some((field, _, _)) = checks.iter().find(|(_, got, want)| got != want) {
        return Err(ResultRejected::Mismatch(field));
    }
    if sha256(&output)[..] != claim.output_sha256[..] {
        return Err(ResultRejected::HashMismatch("output"));
    }
    if sha256(&stderr)[..] != claim.stderr_sha256[..] {
        return Err(ResultRejected::HashMismatch("stderr"));
    }
    let result = outcome_from_claim(&claim)
        .ok_or_else(|| ResultRejected::Malformed(format!("unknown outcome {}", claim.outcome)))?;
    Ok(VerifiedResult {
        worker: verified.signer,
        result,
        output,
        stderr,
        key: VoteKey::of(&claim),
        claim,
        envelope: signed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use peergrid_proto::Identity;

    struct Fixture {
        worker: Identity,
        job_id: Sha256Hash,
        nonce: [u8; 16],
        module: Sha256Hash,
        input: Sha256Hash,
    }

    impl Fixture {
        fn new() -> Self {
            Self {
                worker: Identity::generate(),
                job_id: [1; 32],
                nonce: [2; 16],
                module: [3; 32],
                input: [4; 32],
            }
        }
        fn claim(&self, output: &[u8]) -> pb::ResultClaim {
            pb::ResultClaim {
                job_id: self.job_id.to_vec(),
                worker_id: self.worker.peer_id().as_bytes().to_vec(),
                nonce: self.nonce.to_vec(),
                module_sha256: self.module.to_vec(),
                input_sha256: self.input.to_vec(),
                outcome: pb::Outcome::Success as i32,
                output_sha256: sha256(output).to_vec(),
                stderr_sha256: sha256(b"").to_vec(),
                fuel_used: 42,
                ..Default::default()
            }
        }
        fn expected(&self) -> Expected<'_> {
            Expected {
                worker: self.worker.peer_id(),
                job_id: &self.job_id,
                nonce: &self.nonce,
                module_hash: &self.module,
                input_hash: &self.input,
            }
        }
        fn sign(&self, by: &Identity, claim: &pb::ResultClaim) -> pb::SignedEnvelope {
            envelope::sign(by, Domain::Result, claim.encode_to_vec())
        }
    }

    #[test]
    fn good_result_verifies() {
        let f = Fixture::new();
        let env = f.sign(&f.worker, &f.claim(b"42\n"));
        let r = verify_result(env, b"42\n".to_vec(), vec![], &f.expected()).unwrap();
        assert_eq!(r.result, Ok(()));
        assert_eq!(r.claim.fuel_used, 42);
    }

    #[test]
    fn tampered_output_is_refused() {
        let f = Fixture::new();
        let env = f.sign(&f.worker, &f.claim(b"42\n"));
        let err = verify_result(env, b"43\n".to_vec(), vec![], &f.expected()).unwrap_err();
        assert_eq!(err, ResultRejected::HashMismatch("output"));
    }

    #[test]
    fn tampered_claim_bytes_are_refused() {
        let f = Fixture::new();
        let mut env = f.sign(&f.worker, &f.claim(b"x"));
        let last = env.payload.len() - 1;
        env.payload[last] ^= 0x55;
        let err = verify_result(env, b"x".to_vec(), vec![], &f.expected()).unwrap_err();
        assert!(matches!(err, ResultRejected::Signature(_)), "{err}");
    }

    #[test]
    fn another_key_is_refused() {
        let f = Fixture::new();
        let impostor = Identity::generate();
        let env = f.sign(&impostor, &f.claim(b"x"));
        let err = verify_result(env, b"x".to_vec(), vec![], &f.expected()).unwrap_err();
        assert!(matches!(err, ResultRejected::WrongSigner { .. }), "{err}");
    }

    #[test]
    fn claim_for_another_nonce_is_refused() {
        let f = Fixture::new();
        let mut claim = f.claim(b"x");
        claim.nonce = vec![9; 16];
        let env = f.sign(&f.worker, &claim);
        let err = verify_result(env, b"x".to_vec(), vec![], &f.expected()).unwrap_err();
        assert_eq!(err, ResultRejected::Mismatch("nonce"));
    }

    #[test]
    fn garbage_payload_is_malformed() {
        let f = Fixture::new();
        let env = envelope::sign(&f.worker, Domain::Result, vec![0xff, 0xff, 0xff]);
        let err = verify_result(env, vec![], vec![], &f.expected()).unwrap_err();
        assert!(matches!(err, ResultRejected::Malformed(_)), "{err}");
    }
}
