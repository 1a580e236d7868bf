//! Result certificates: evidence of an accepted result that anyone can check
//! offline.
//!
//! A [`Certificate`] names a job, the hashes of its module, input and agreed
//! output, how the run ended, and carries the signed result claims of the
//! workers that agreed, exactly as they sent them (`ResultCertificate` in
//! `peergrid/v1/certificate.proto`). [`Certificate::from_report`] builds one
//! from an accepted [`JobReport`]; [`Certificate::verify`] checks one with no
//! network and no trust in whoever assembled it.
//!
//! # What verification checks
//!
//! For every claim, in order: its signature verifies for the result domain
//! (before anything is decoded); its payload decodes to a `ResultClaim`; the
//! claim's `worker_id` is the signer's peer id; the signer has not signed an
//! earlier claim of this certificate (one vote per worker); and its job id,
//! module, input and output hashes and outcome equal the certificate's.
//!
//! A claim that fails any of those checks makes the whole certificate
//! invalid ([`CertificateError::InvalidClaim`], naming the first such claim):
//! a certificate built from an accepted result never contains one, so its
//! presence means the certificate was forged, tampered with or assembled from
//! the wrong claims, and nothing it says should be believed.
//!
//! A genuine claim whose signer the verifier does not trust (in
//! [`VerifyPolicy::banned`], or missing from [`VerifyPolicy::known`] when
//! that is set) is not an error by itself: it is *not counted*, and reported
//! as such. The certificate is valid when the counted signers number at
//! least [`VerifyPolicy::min_signatures`]; otherwise verification fails with
//! [`CertificateError::TooFewSignatures`], which lists every claim that was
//! not counted and why. [`Certificate::check`] gives the per-claim verdicts
//! whether or not the certificate as a whole is valid.
//!
//! # What a certificate proves
//!
//! That *N distinct keys* signed this result for this job, module and input.
//! Not that the keys belong to distinct machines (anyone can make keys: require
//! [`VerifyPolicy::known`] signers to rule that out), and not that no other
//! worker disagreed (the assembler can leave dissenting claims out). Claims
//! bind the input by the hash of stdin only: program arguments and limits are
//! not covered by a v1 claim.
//!
//! ```
//! use scheduler_lib::certificate::{Certificate, VerifyPolicy};
//!
//! # fn check(bytes: &[u8], output: &[u8]) -> Result<(), Box<dyn std::error::Error>> {
//! let certificate = Certificate::decode(bytes)?;
//! let verified = certificate.verify(&VerifyPolicy::default())?; // at least 2 signers
//! assert!(certificate.matches_output(output), "not the certified output");
//! println!("{} workers signed job {}", verified.signers.len(), hex::encode(verified.job_id));
//! # Ok(()) }
//! ```

use std::collections::{HashMap, HashSet};
use std::fmt;

use peergrid_proto::hash::hash_from_slice;
use peergrid_proto::{Domain, EnvelopeError, PeerId, Sha256Hash, envelope, pb, sha256};
use prost::Message;

use crate::outcome::{JobFailure, outcome_from_claim, outcome_to_claim_fields};
use crate::verdict::{JobReport, Verdict};

/// The most claims a certificate may carry; [`Certificate::decode`] refuses
/// more, so a hostile file cannot make a verifier check signatures for long.
pub const MAX_CLAIMS: usize = 256;

/// The signed evidence of one accepted result.
///
/// The fields besides `claims` state what the certificate certifies; every
/// claim must say the same for the certificate to be valid. Build one with
/// [`Certificate::from_report`] or [`Certificate::decode`]; nothing in it is
/// trusted until [`Certificate::verify`] says so.
#[derive(Debug, Clone, PartialEq)]
pub struct Certificate {
    /// The job (`JobSpec.job_id`).
    pub job_id: Sha256Hash,
    /// SHA-256 of the module that ran.
    pub module_sha256: Sha256Hash,
    /// SHA-256 of the job's stdin.
    pub input_sha256: Sha256Hash,
    /// SHA-256 of the agreed stdout.
    pub output_sha256: Sha256Hash,
    /// How the agreed run ended: `Ok` for success, or the deterministic
    /// failure every agreeing worker saw.
    pub result: Result<(), JobFailure>,
    /// The agreeing workers' signed `ResultClaim`s, exactly as received.
    pub claims: Vec<pb::SignedEnvelope>,
}

impl Certificate {
    /// The certificate of an accepted result: its hashes and outcome, and the
    /// signed claims of every agreeing worker.
    ///
    /// `None` unless the verdict is [`Verdict::Accepted`] (a result no quorum
    /// agreed on has nothing to certify). The module and input hashes are
    /// read from the first agreeing claim, which the scheduler has already
    /// verified; `None` also if that claim cannot be read, which a report
    /// produced by the [`Scheduler`](crate::Scheduler) never contains.
    pub fn from_report(report: &JobReport) -> Option<Self> {
        let Verdict::Accepted {
            output,
            agreeing_workers,
            ..
        } = &report.verdict
        else {
            return None;
        };
        let first = agreeing_workers.first()?;
        let claim = pb::ResultClaim::decode(first.signed_claim.payload.as_slice()).ok()?;
        Some(Self {
            job_id: report.job_id,
            module_sha256: hash_from_slice(&claim.module_sha256)?,
            input_sha256: hash_from_slice(&claim.input_sha256)?,
            output_sha256: sha256(&output.stdout),
            result: output.result.clone(),
            claims: agreeing_workers
                .iter()
                .map(|run| run.signed_claim.clone())
                .collect(),
        })
    }

    /// The certificate as its wire message.
    pub fn to_proto(&self) -> pb::ResultCertificate {
        let (outcome, exit_code, detail) = outcome_to_claim_fields(&self.result);
        pb::ResultCertificate {
            job_id: self.job_id.to_vec(),
            module_sha256: self.module_sha256.to_vec(),
            input_sha256: self.input_sha256.to_vec(),
            output_sha256: self.output_sha256.to_vec(),
            outcome: outcome as i32,
            exit_code,
            detail,
            claims: self.claims.clone(),
        }
    }

    /// Reads a certificate from its wire message, checking its shape (hash
    /// lengths, a known deterministic outcome, at most [`MAX_CLAIMS`]
    /// claims) but none of its signatures.
    pub fn from_proto(message: pb::ResultCertificate) -> Result<Self, CertificateError> {
        let hash = |field: &str, bytes: &[u8]| {
            hash_from_slice(bytes).ok_or_else(|| {
                CertificateError::Malformed(format!(
                    "{field} is {} bytes, expected 32",
                    bytes.len()
                ))
            })
        };
        let outcome_fields = pb::ResultClaim {
            outcome: message.outcome,
            exit_code: message.exit_code,
            detail: message.detail.clone(),
            ..Default::default()
        };
        let result = outcome_from_claim(&outcome_fields).ok_or_else(|| {
            CertificateError::Malformed(format!(
                "outcome {} is unspecified or unknown",
                message.outcome
            ))
        })?;
        let certificate = Self {
            job_id: hash("job_id", &message.job_id)?,
            module_sha256: hash("module_sha256", &message.module_sha256)?,
            input_sha256: hash("input_sha256", &message.input_sha256)?,
            output_sha256: hash("output_sha256", &message.output_sha256)?,
            result,
            claims: message.claims,
        };
        certificate.check_shape()?;
        Ok(certificate)
    }

    /// The encoded `ResultCertificate` protobuf (what `peergrid submit
    /// --certificate` writes).
    pub fn encode(&self) -> Vec<u8> {
        self.to_proto().encode_to_vec()
    }

    /// Decodes an encoded `ResultCertificate`; see [`Certificate::from_proto`]
    /// for what is checked here (the signatures are checked by
    /// [`Certificate::verify`]).
    pub fn decode(bytes: &[u8]) -> Result<Self, CertificateError> {
        let message = pb::ResultCertificate::decode(bytes).map_err(|e| {
            CertificateError::Malformed(format!("not a ResultCertificate protobuf: {e}"))
        })?;
        Self::from_proto(message)
    }

    /// True when `output` is the certified output (its SHA-256 equals
    /// `output_sha256`).
    pub fn matches_output(&self, output: &[u8]) -> bool {
        sha256(output) == self.output_sha256
    }

    /// Checks every claim against the certificate and `policy`, one verdict
    /// per claim in order, without deciding on the certificate as a whole
    /// (that is [`Certificate::verify`]). For reports that list every
    /// signer, valid or not.
    pub fn check(&self, policy: &VerifyPolicy) -> Vec<ClaimCheck> {
        let mut seen = HashMap::new();
        self.claims
            .iter()
            .enumerate()
            .map(|(index, signed)| ClaimCheck {
                index,
                signer: PeerId::from_public_key_bytes(&signed.public_key),
                status: self.check_claim(index, signed, policy, &mut seen),
            })
            .collect()
    }

    /// Verifies the certificate offline: every claim genuine and about
    /// exactly this result, and at least `policy.min_signatures` distinct
    /// signers the policy allows. See the [module docs](self) for the rules.
    pub fn verify(&self, policy: &VerifyPolicy) -> Result<VerifiedCertificate, CertificateError> {
        self.check_shape()?;
        let checks = self.check(policy);
        if let Some((index, reason)) = checks.iter().find_map(|c| match &c.status {
            Err(reason) if reason.is_fatal() => Some((c.index, reason.clone())),
            _ => None,
        }) {
            return Err(CertificateError::InvalidClaim { index, reason });
        }
        let mut signers = Vec::new();
        let mut not_counted = Vec::new();
        for check in checks {
            match (&check.status, check.signer) {
                (Ok(()), Some(signer)) => signers.push(signer),
                _ => not_counted.push(check),
            }
        }
        let need = policy.min_signatures.max(1);
        if signers.len() < need {
            return Err(CertificateError::TooFewSignatures {
                got: signers.len(),
                need,
                not_counted,
            });
        }
        Ok(VerifiedCertificate {
            job_id: self.job_id,
            module_sha256: self.module_sha256,
            input_sha256: self.input_sha256,
            output_sha256: self.output_sha256,
            result: self.result.clone(),
            signers,
            not_counted,
        })
    }

    /// What any certificate must satisfy before its claims are looked at.
    fn check_shape(&self) -> Result<(), CertificateError> {
        if self.claims.len() > MAX_CLAIMS {
            return Err(CertificateError::Malformed(format!(
                "{} claims, at most {MAX_CLAIMS} allowed",
                self.claims.len()
            )));
        }
        if let Err(failure) = &self.result
            && !failure.is_deterministic()
        {
            return Err(CertificateError::Malformed(format!(
                "outcome \"{failure}\" is not deterministic, so no quorum can certify it"
            )));
        }
        Ok(())
    }

    /// One claim's verdict; `seen` maps each signer met so far to its claim.
    fn check_claim(
        &self,
        index: usize,
        signed: &pb::SignedEnvelope,
        policy: &VerifyPolicy,
        seen: &mut HashMap<PeerId, usize>,
    ) -> Result<(), ClaimError> {
        let verified =
            envelope::verify(signed, Domain::Result).map_err(ClaimError::BadSignature)?;
        let signer = verified.signer;
        let claim = pb::ResultClaim::decode(verified.payload)
            .map_err(|e| ClaimError::Malformed(e.to_string()))?;
        if claim.worker_id != signer.as_bytes() {
            return Err(ClaimError::WorkerIdMismatch {
                signer,
                worker_id: hex::encode(&claim.worker_id),
            });
        }
        if let Some(&first) = seen.get(&signer) {
            return Err(ClaimError::DuplicateSigner { signer, first });
        }
        seen.insert(signer, index);
        let hashes: [(Field, &[u8], &Sha256Hash); 4] = [
            (Field::Job, &claim.job_id, &self.job_id),
            (Field::Module, &claim.module_sha256, &self.module_sha256),
            (Field::Input, &claim.input_sha256, &self.input_sha256),
            (Field::Output, &claim.output_sha256, &self.output_sha256),
        ];
        for (field, claimed, certified) in hashes {
            if claimed != certified {
                return Err(ClaimError::Mismatch {
                    field,
                    claimed: hex::encode(claimed),
                    certified: hex::encode(certified),
                });
            }
        }
        let claimed_result = outcome_from_claim(&claim);
        if claimed_result.as_ref() != Some(&self.result) {
            return Err(ClaimError::Mismatch {
                field: Field::Outcome,
                claimed: match claimed_result {
                    Some(result) => describe_result(&result),
                    None => format!("unknown outcome {}", claim.outcome),
                },
                certified: describe_result(&self.result),
            });
        }
        if policy.banned.contains(&signer) {
            return Err(ClaimError::Banned(signer));
        }
        if let Some(known) = &policy.known
            && !known.contains(&signer)
        {
            return Err(ClaimError::Unknown(signer));
        }
        Ok(())
    }
}

/// Whom a verifier trusts, and how many of them must have signed.
#[derive(Debug, Clone)]
pub struct VerifyPolicy {
    /// Distinct allowed signers a valid certificate needs (default 2, the
    /// strict majority of the default 3 replicas). Values below 1 count as 1:
    /// a certificate without a signature is never valid.
    pub min_signatures: usize,
    /// When set, only these peers' signatures are counted: a signer outside
    /// the set is reported as unknown and not counted. Use it to rule out
    /// keys made up by whoever assembled the certificate.
    pub known: Option<HashSet<PeerId>>,
    /// Peers whose signatures are never counted (e.g. caught cheating).
    pub banned: HashSet<PeerId>,
}

impl Default for VerifyPolicy {
    fn default() -> Self {
        Self {
            min_signatures: 2,
            known: None,
            banned: HashSet::new(),
        }
    }
}

/// A certificate that passed [`Certificate::verify`].
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedCertificate {
    /// The job.
    pub job_id: Sha256Hash,
    /// SHA-256 of the module that ran.
    pub module_sha256: Sha256Hash,
    /// SHA-256 of the job's stdin.
    pub input_sha256: Sha256Hash,
    /// SHA-256 of the certified stdout.
    pub output_sha256: Sha256Hash,
    /// How the certified run ended.
    pub result: Result<(), JobFailure>,
    /// The counted signers, in claim order: distinct, allowed by the policy,
    /// each with a genuine claim for exactly this result.
    pub signers: Vec<PeerId>,
    /// Genuine claims that were not counted (banned or unknown signers).
    pub not_counted: Vec<ClaimCheck>,
}

/// The verdict on one claim of a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimCheck {
    /// Position of the claim in the certificate, from 0.
    pub index: usize,
    /// Peer id of the envelope's public key, or `None` if it is not a valid
    /// ed25519 key. That key is proven to have signed the claim unless the
    /// status is [`ClaimError::BadSignature`].
    pub signer: Option<PeerId>,
    /// `Ok` when the claim counts towards `min_signatures`.
    pub status: Result<(), ClaimError>,
}

/// A certified field that a claim can disagree on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Field {
    /// `job_id`.
    Job,
    /// `module_sha256`.
    Module,
    /// `input_sha256` (the stdin).
    Input,
    /// `output_sha256` (the stdout).
    Output,
    /// `outcome`, `exit_code` and `detail`.
    Outcome,
}

impl Field {
    /// The field's name in `ResultClaim`.
    pub fn wire_name(self) -> &'static str {
        match self {
            Field::Job => "job_id",
            Field::Module => "module_sha256",
            Field::Input => "input_sha256",
            Field::Output => "output_sha256",
            Field::Outcome => "outcome",
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Field::Job => "job",
            Field::Module => "module",
            Field::Input => "input",
            Field::Output => "output",
            Field::Outcome => "outcome",
        })
    }
}

/// Why one claim of a certificate does not count. Read after "claim N", as
/// [`CertificateError`] prints it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClaimError {
    /// The envelope is malformed or its signature does not verify as a
    /// result (tampered bytes, another key, or another domain).
    #[error("has a bad signature: {0}")]
    BadSignature(EnvelopeError),
    /// The signed payload is not a `ResultClaim`.
    #[error("is not a ResultClaim: {0}")]
    Malformed(String),
    /// The claim names another worker than the key that signed it.
    #[error("is signed by {signer} but names worker {worker_id}")]
    WorkerIdMismatch {
        /// Who signed.
        signer: PeerId,
        /// The `worker_id` in the claim, as hex.
        worker_id: String,
    },
    /// The signer already signed an earlier claim of this certificate: one
    /// vote per worker.
    #[error("repeats signer {signer} of claim {first} (one vote per worker)")]
    DuplicateSigner {
        /// Who signed twice.
        signer: PeerId,
        /// The earlier claim by the same signer.
        first: usize,
    },
    /// The claim is about another job, module, input, output or outcome
    /// than the certificate.
    #[error(
        "is for another {field}: it signed {} {claimed}, the certificate says {certified}",
        field.wire_name()
    )]
    Mismatch {
        /// The field that differs.
        field: Field,
        /// What the claim says (hex for hashes).
        claimed: String,
        /// What the certificate says.
        certified: String,
    },
    /// A genuine claim by a peer the policy bans: not counted.
    #[error("is signed by banned peer {0}")]
    Banned(PeerId),
    /// A genuine claim by a peer outside the policy's known set: not counted.
    #[error("is signed by {0}, not a known peer")]
    Unknown(PeerId),
}

impl ClaimError {
    /// True when the claim is not genuine or not about this result, which
    /// makes the whole certificate invalid; false for genuine claims that are
    /// only not counted ([`ClaimError::Banned`], [`ClaimError::Unknown`]).
    pub fn is_fatal(&self) -> bool {
        !matches!(self, ClaimError::Banned(_) | ClaimError::Unknown(_))
    }
}

/// Why a certificate is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertificateError {
    /// The bytes are not a well-formed certificate (not protobuf, a hash of
    /// the wrong length, an unknown or non-deterministic outcome, too many
    /// claims).
    #[error("malformed certificate: {0}")]
    Malformed(String),
    /// A claim is forged, tampered with, repeated, or about another result:
    /// the certificate cannot be trusted at all. The first such claim.
    #[error("claim {index} {reason}")]
    InvalidClaim {
        /// Position of the claim, from 0.
        index: usize,
        /// What is wrong with it.
        reason: ClaimError,
    },
    /// Every claim is genuine, but fewer allowed signers than required.
    #[error(
        "too few valid signatures: got {got}, need {need}{}",
        not_counted_suffix(not_counted)
    )]
    TooFewSignatures {
        /// Distinct allowed signers found.
        got: usize,
        /// Signers required.
        need: usize,
        /// The genuine claims that were not counted, and why.
        not_counted: Vec<ClaimCheck>,
    },
}

fn not_counted_suffix(not_counted: &[ClaimCheck]) -> String {
    let reasons: Vec<String> = not_counted
        .iter()
        .filter_map(|check| {
            let reason = check.status.as_ref().err()?;
            Some(format!("claim {} {reason}", check.index))
        })
        .collect();
    if reasons.is_empty() {
        String::new()
    } else {
        format!("; not counted: {}", reasons.join("; "))
    }
}

/// "success" or the failure, as certificates and claims print an outcome.
pub fn describe_result(result: &Result<(), JobFailure>) -> String {
    match result {
        Ok(()) => "success".to_string(),
        Err(failure) => failure.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use peergrid_proto::Identity;

    use super::*;
    use crate::verdict::{AgreedOutput, WorkerRun};

    const OUTPUT: &[u8] = b"primes<=100: 25\n";

    struct Fixture {
        workers: Vec<Identity>,
        job_id: Sha256Hash,
        module: Sha256Hash,
        input: Sha256Hash,
    }

    impl Fixture {
        fn new(n: usize) -> Self {
            Self {
                workers: (0..n).map(|_| Identity::generate()).collect(),
                job_id: [1; 32],
                module: [2; 32],
                input: [3; 32],
            }
        }

        /// The honest claim of `worker` for OUTPUT.
        fn claim(&self, worker: &Identity) -> pb::ResultClaim {
            pb::ResultClaim {
                job_id: self.job_id.to_vec(),
                worker_id: worker.peer_id().as_bytes().to_vec(),
                nonce: worker.peer_id().as_bytes()[..16].to_vec(),
                module_sha256: self.module.to_vec(),
                input_sha256: self.input.to_vec(),
                outcome: pb::Outcome::Success as i32,
                output_sha256: sha256(OUTPUT).to_vec(),
                stderr_sha256: sha256(b"").to_vec(),
                fuel_used: 1234,
                wall_time_us: 99,
                ..Default::default()
            }
        }

        fn signed(&self, worker: &Identity, claim: &pb::ResultClaim) -> pb::SignedEnvelope {
            envelope::sign(worker, Domain::Result, claim.encode_to_vec())
        }

        /// A certificate with an honest claim from every worker.
        fn certificate(&self) -> Certificate {
            Certificate {
                job_id: self.job_id,
                module_sha256: self.module,
                input_sha256: self.input,
                output_sha256: sha256(OUTPUT),
                result: Ok(()),
                claims: self
                    .workers
                    .iter()
                    .map(|w| self.signed(w, &self.claim(w)))
                    .collect(),
            }
        }

        /// The certificate with claim `i` replaced by `worker`'s `claim`.
        fn with_claim(&self, i: usize, worker: &Identity, claim: &pb::ResultClaim) -> Certificate {
            let mut certificate = self.certificate();
            certificate.claims[i] = self.signed(worker, claim);
            certificate
        }

        fn peer(&self, i: usize) -> PeerId {
            self.workers[i].peer_id()
        }
    }

    fn min(n: usize) -> VerifyPolicy {
        VerifyPolicy {
            min_signatures: n,
            ..VerifyPolicy::default()
        }
    }

    fn invalid_claim(err: CertificateError) -> (usize, ClaimError) {
        match err {
            CertificateError::InvalidClaim { index, reason } => (index, reason),
            other => panic!("expected an invalid claim, got {other:?}"),
        }
    }

    #[test]
    fn honest_certificate_verifies_and_round_trips() {
        let f = Fixture::new(3);
        let certificate = f.certificate();
        let decoded = Certificate::decode(&certificate.encode()).unwrap();
        assert_eq!(decoded, certificate);
        let verified = decoded.verify(&min(3)).unwrap();
        assert_eq!(verified.signers, vec![f.peer(0), f.peer(1), f.peer(2)]);
        assert!(verified.not_counted.is_empty());
        assert_eq!(verified.output_sha256, sha256(OUTPUT));
        assert_eq!(verified.result, Ok(()));
        assert!(decoded.matches_output(OUTPUT));
        assert!(!decoded.matches_output(b"primes<=100: 26\n"));
        assert!(decoded.check(&min(3)).iter().all(|c| c.status.is_ok()));
    }

    #[test]
    fn a_certified_failure_verifies() {
        let f = Fixture::new(2);
        let failure = JobFailure::Trap("unreachable".into());
        let (outcome, exit_code, detail) = outcome_to_claim_fields(&Err(failure.clone()));
        let mut certificate = f.certificate();
        certificate.result = Err(failure.clone());
        certificate.claims = f
            .workers
            .iter()
            .map(|w| {
                let claim = pb::ResultClaim {
                    outcome: outcome as i32,
                    exit_code,
                    detail: detail.clone(),
                    ..f.claim(w)
                };
                f.signed(w, &claim)
            })
            .collect();
        let decoded = Certificate::decode(&certificate.encode()).unwrap();
        assert_eq!(decoded.result, Err(failure));
        decoded.verify(&VerifyPolicy::default()).unwrap();
    }

    #[test]
    fn too_few_signatures_names_the_numbers() {
        let f = Fixture::new(2);
        let err = f.certificate().verify(&min(3)).unwrap_err();
        assert_eq!(
            err,
            CertificateError::TooFewSignatures {
                got: 2,
                need: 3,
                not_counted: vec![]
            }
        );
        assert_eq!(err.to_string(), "too few valid signatures: got 2, need 3");
    }

    #[test]
    fn an_empty_certificate_is_never_valid() {
        let f = Fixture::new(0);
        let err = f.certificate().verify(&min(0)).unwrap_err();
        assert!(
            matches!(
                err,
                CertificateError::TooFewSignatures {
                    got: 0,
                    need: 1,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn tampered_claim_is_a_bad_signature() {
        let f = Fixture::new(3);
        let mut certificate = f.certificate();
        let last = certificate.claims[1].payload.len() - 1;
        certificate.claims[1].payload[last] ^= 0x01;
        let (index, reason) = invalid_claim(certificate.verify(&min(2)).unwrap_err());
        assert_eq!(index, 1);
        assert_eq!(
            reason,
            ClaimError::BadSignature(EnvelopeError::BadSignature(Domain::Result))
        );
        // The other claims are still reported as fine, and the signer named.
        let checks = certificate.check(&min(2));
        assert!(checks[0].status.is_ok() && checks[2].status.is_ok());
        assert_eq!(checks[1].signer, Some(f.peer(1)));
    }

    #[test]
    fn a_claim_signed_for_another_domain_is_a_bad_signature() {
        let f = Fixture::new(2);
        let mut certificate = f.certificate();
        certificate.claims[0] = envelope::sign(
            &f.workers[0],
            Domain::Job,
            f.claim(&f.workers[0]).encode_to_vec(),
        );
        let (index, reason) = invalid_claim(certificate.verify(&min(1)).unwrap_err());
        assert_eq!(index, 0);
        assert!(matches!(reason, ClaimError::BadSignature(_)), "{reason:?}");
    }

    #[test]
    fn a_key_swapped_onto_a_claim_is_a_bad_signature() {
        let f = Fixture::new(2);
        let mut certificate = f.certificate();
        certificate.claims[0].public_key = Identity::generate().public_key().to_vec();
        let (_, reason) = invalid_claim(certificate.verify(&min(1)).unwrap_err());
        assert!(matches!(reason, ClaimError::BadSignature(_)), "{reason:?}");
    }

    #[test]
    fn a_signed_non_claim_is_malformed() {
        let f = Fixture::new(2);
        let mut certificate = f.certificate();
        certificate.claims[1] = envelope::sign(&f.workers[1], Domain::Result, vec![0xff; 3]);
        let (index, reason) = invalid_claim(certificate.verify(&min(1)).unwrap_err());
        assert_eq!(index, 1);
        assert!(matches!(reason, ClaimError::Malformed(_)), "{reason:?}");
    }

    #[test]
    fn a_claim_naming_another_worker_is_refused() {
        let f = Fixture::new(2);
        // Worker 0 signs a claim that says worker 1 ran the job.
        let claim = f.claim(&f.workers[1]);
        let certificate = f.with_claim(0, &f.workers[0], &claim);
        let (index, reason) = invalid_claim(certificate.verify(&min(1)).unwrap_err());
        assert_eq!(index, 0);
        assert_eq!(
            reason,
            ClaimError::WorkerIdMismatch {
                signer: f.peer(0),
                worker_id: f.peer(1).to_string()
            }
        );
    }

    #[test]
    fn one_vote_per_worker() {
        let f = Fixture::new(2);
        // The same envelope twice.
        let mut certificate = f.certificate();
        certificate.claims.push(certificate.claims[0].clone());
        let (index, reason) = invalid_claim(certificate.verify(&min(2)).unwrap_err());
        assert_eq!(index, 2);
        assert_eq!(
            reason,
            ClaimError::DuplicateSigner {
                signer: f.peer(0),
                first: 0
            }
        );
        // Two different claims (another nonce) by one worker.
        let mut certificate = f.certificate();
        let second = pb::ResultClaim {
            nonce: vec![7; 16],
            ..f.claim(&f.workers[1])
        };
        certificate.claims.push(f.signed(&f.workers[1], &second));
        let (index, reason) = invalid_claim(certificate.verify(&min(2)).unwrap_err());
        assert_eq!(index, 2);
        assert!(
            matches!(reason, ClaimError::DuplicateSigner { first: 1, .. }),
            "{reason:?}"
        );
    }

    #[test]
    fn a_claim_for_another_job_module_input_output_or_outcome_is_named() {
        let f = Fixture::new(3);
        let w = &f.workers[2];
        let cases: Vec<(Field, pb::ResultClaim)> = vec![
            (
                Field::Job,
                pb::ResultClaim {
                    job_id: vec![9; 32],
                    ..f.claim(w)
                },
            ),
            (
                Field::Module,
                pb::ResultClaim {
                    module_sha256: vec![9; 32],
                    ..f.claim(w)
                },
            ),
            (
                Field::Input,
                pb::ResultClaim {
                    input_sha256: vec![9; 32],
                    ..f.claim(w)
                },
            ),
            (
                Field::Output,
                pb::ResultClaim {
                    output_sha256: sha256(b"a lie\n").to_vec(),
                    ..f.claim(w)
                },
            ),
            (
                Field::Outcome,
                pb::ResultClaim {
                    outcome: pb::Outcome::OutOfFuel as i32,
                    ..f.claim(w)
                },
            ),
            (
                Field::Outcome,
                pb::ResultClaim {
                    outcome: 99,
                    ..f.claim(w)
                },
            ),
        ];
        for (field, claim) in cases {
            let certificate = f.with_claim(2, w, &claim);
            let (index, reason) = invalid_claim(certificate.verify(&min(2)).unwrap_err());
            assert_eq!(index, 2);
            let ClaimError::Mismatch {
                field: got,
                claimed,
                certified,
            } = &reason
            else {
                panic!("{field}: expected a mismatch, got {reason:?}");
            };
            assert_eq!(*got, field);
            assert_ne!(claimed, certified);
        }
        // The message names the claim, the field and both values.
        let lie = pb::ResultClaim {
            output_sha256: sha256(b"a lie\n").to_vec(),
            ..f.claim(w)
        };
        let err = f.with_claim(2, w, &lie).verify(&min(2)).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "claim 2 is for another output: it signed output_sha256 {}, the certificate says {}",
                hex::encode(sha256(b"a lie\n")),
                hex::encode(sha256(OUTPUT))
            )
        );
    }

    #[test]
    fn invalid_claims_are_fatal_even_with_enough_valid_ones() {
        let f = Fixture::new(3);
        let lie = pb::ResultClaim {
            output_sha256: vec![0; 32],
            ..f.claim(&f.workers[0])
        };
        let certificate = f.with_claim(0, &f.workers[0], &lie);
        // Claims 1 and 2 would reach min 2, but claim 0 is a lie.
        let (index, _) = invalid_claim(certificate.verify(&min(2)).unwrap_err());
        assert_eq!(index, 0);
    }

    #[test]
    fn banned_signers_are_not_counted() {
        let f = Fixture::new(3);
        let certificate = f.certificate();
        let mut policy = min(2);
        policy.banned.insert(f.peer(1));
        let verified = certificate.verify(&policy).unwrap();
        assert_eq!(verified.signers, vec![f.peer(0), f.peer(2)]);
        assert_eq!(
            verified.not_counted,
            vec![ClaimCheck {
                index: 1,
                signer: Some(f.peer(1)),
                status: Err(ClaimError::Banned(f.peer(1)))
            }]
        );
        policy.banned.insert(f.peer(2));
        let err = certificate.verify(&policy).unwrap_err();
        let CertificateError::TooFewSignatures {
            got,
            need,
            not_counted,
        } = &err
        else {
            panic!("expected too few signatures, got {err:?}");
        };
        assert_eq!((*got, *need, not_counted.len()), (1, 2, 2));
        assert_eq!(
            err.to_string(),
            format!(
                "too few valid signatures: got 1, need 2; not counted: \
                 claim 1 is signed by banned peer {}; claim 2 is signed by banned peer {}",
                f.peer(1),
                f.peer(2)
            )
        );
    }

    #[test]
    fn only_known_signers_count_when_required() {
        let f = Fixture::new(3);
        let certificate = f.certificate();
        let policy = VerifyPolicy {
            known: Some([f.peer(0), f.peer(2)].into_iter().collect()),
            ..min(2)
        };
        let verified = certificate.verify(&policy).unwrap();
        assert_eq!(verified.signers, vec![f.peer(0), f.peer(2)]);
        assert_eq!(
            verified.not_counted[0].status,
            Err(ClaimError::Unknown(f.peer(1)))
        );
        let strangers = VerifyPolicy {
            known: Some([Identity::generate().peer_id()].into_iter().collect()),
            ..min(2)
        };
        let err = certificate.verify(&strangers).unwrap_err();
        assert!(
            matches!(
                err,
                CertificateError::TooFewSignatures {
                    got: 0,
                    need: 2,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("not a known peer"), "{err}");
    }

    #[test]
    fn malformed_certificates_are_named() {
        let err = Certificate::decode(&[0xff, 0xff, 0xff]).unwrap_err();
        assert!(matches!(err, CertificateError::Malformed(_)), "{err:?}");

        let f = Fixture::new(2);
        let mut message = f.certificate().to_proto();
        message.output_sha256.truncate(5);
        let err = Certificate::decode(&message.encode_to_vec()).unwrap_err();
        assert_eq!(
            err,
            CertificateError::Malformed("output_sha256 is 5 bytes, expected 32".into())
        );

        let mut message = f.certificate().to_proto();
        message.outcome = pb::Outcome::Unspecified as i32;
        let err = Certificate::decode(&message.encode_to_vec()).unwrap_err();
        assert!(err.to_string().contains("unspecified"), "{err}");

        let mut message = f.certificate().to_proto();
        message.outcome = pb::Outcome::Timeout as i32;
        let err = Certificate::decode(&message.encode_to_vec()).unwrap_err();
        assert!(err.to_string().contains("not deterministic"), "{err}");

        let mut certificate = f.certificate();
        certificate.result = Err(JobFailure::Timeout);
        assert!(matches!(
            certificate.verify(&min(1)),
            Err(CertificateError::Malformed(_))
        ));

        let mut message = f.certificate().to_proto();
        message.claims = vec![message.claims[0].clone(); MAX_CLAIMS + 1];
        let err = Certificate::decode(&message.encode_to_vec()).unwrap_err();
        assert!(err.to_string().contains("at most"), "{err}");
    }

    fn run(f: &Fixture, worker: &Identity, claim: &pb::ResultClaim) -> WorkerRun {
        WorkerRun {
            worker: worker.peer_id(),
            addr: "127.0.0.1:1".into(),
            result: Ok(()),
            output_sha256: hash_from_slice(&claim.output_sha256).unwrap(),
            fuel_used: claim.fuel_used,
            cpu_time: Duration::from_micros(claim.cpu_time_us),
            wall_time: Duration::from_micros(claim.wall_time_us),
            round_trip: Duration::from_millis(1),
            signed_claim: f.signed(worker, claim),
        }
    }

    #[test]
    fn from_report_certifies_the_agreeing_workers_only() {
        let f = Fixture::new(3);
        let liar = pb::ResultClaim {
            output_sha256: sha256(b"lie").to_vec(),
            ..f.claim(&f.workers[2])
        };
        let report = JobReport {
            job_id: f.job_id,
            verdict: Verdict::Accepted {
                output: AgreedOutput {
                    result: Ok(()),
                    stdout: OUTPUT.to_vec(),
                    stderr: Vec::new(),
                    fuel_used: 1234,
                },
                agreeing_workers: f.workers[..2]
                    .iter()
                    .map(|w| run(&f, w, &f.claim(w)))
                    .collect(),
                dissenting_workers: vec![run(&f, &f.workers[2], &liar)],
                failed_workers: Vec::new(),
            },
            elapsed: Duration::from_millis(5),
        };
        let certificate = Certificate::from_report(&report).unwrap();
        assert_eq!(certificate.module_sha256, f.module);
        assert_eq!(certificate.input_sha256, f.input);
        assert!(certificate.matches_output(OUTPUT));
        let verified = certificate.verify(&min(2)).unwrap();
        assert_eq!(verified.signers, vec![f.peer(0), f.peer(1)]);

        let no_quorum = JobReport {
            verdict: Verdict::NoQuorum {
                needed: 2,
                runs: Vec::new(),
                failed_workers: Vec::new(),
            },
            ..report
        };
        assert_eq!(Certificate::from_report(&no_quorum), None);
    }
}
