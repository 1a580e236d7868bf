//! Admission of a job envelope: every check a worker makes before it spends
//! a cycle on a job, as a pure function of the request, the node's policy and
//! the time. The signature is verified before the payload is decoded.

use peergrid_proto::{Domain, EnvelopeError, PeerId, Sha256Hash, envelope, pb};
use prost::Message;
use scheduler_lib::Limits;
use tonic::{Code, Status};

use crate::replay::ReplayError;

/// What a node admits.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Limits applied to fields a job leaves at zero.
    pub default_limits: Limits,
    /// The most a job may ask for.
    pub max_limits: Limits,
    /// Largest stdin + args, in bytes.
    pub max_input_bytes: u64,
}

/// A job that passed admission.
#[derive(Debug, Clone)]
pub struct AdmittedJob {
    /// Who signed it.
    pub submitter: PeerId,
    /// The job id shared by all its replicas.
    pub job_id: Sha256Hash,
    /// The module to run.
    pub module_hash: Sha256Hash,
    /// This envelope's nonce.
    pub nonce: [u8; 16],
    /// Effective limits.
    pub limits: Limits,
    /// The decoded spec.
    pub spec: pb::JobSpec,
}

/// Why a job was refused, each mapped to a gRPC status with a clear message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The request carried no envelope.
    #[error("ExecuteRequest.job is missing")]
    MissingEnvelope,
    /// The envelope's signature failed.
    #[error("job {0}")]
    Signature(#[from] EnvelopeError),
    /// The signed payload is not a `JobSpec`.
    #[error("job payload is not a valid JobSpec: {0}")]
    Malformed(String),
    /// A field has the wrong length.
    #[error("JobSpec.{field} must be {want} bytes, got {got}")]
    BadField {
        /// The field.
        field: &'static str,
        /// Required length.
        want: usize,
        /// Actual length.
        got: usize,
    },
    /// The envelope is addressed to another worker.
    #[error("job is addressed to peer {addressed}, this worker is {me}")]
    WrongWorker {
        /// Short id it was addressed to.
        addressed: String,
        /// This worker's short id.
        me: String,
    },
    /// The job asks for more than this worker allows.
    #[error("job limit {0}")]
    Limit(String),
    /// Stdin plus arguments exceed the input cap.
    #[error("job input is {got} bytes, this worker accepts at most {max}")]
    InputTooLarge {
        /// Input size.
        got: u64,
        /// Cap.
        max: u64,
    },
    /// Expired, replayed or too-long-lived envelope.
    #[error("{0}")]
    Replay(#[from] ReplayError),
}

impl Refusal {
    /// The gRPC status for this refusal.
    pub fn to_status(&self) -> Status {
        let code = match self {
            Refusal::Signature(_) => Code::Unauthenticated,
            Refusal::WrongWorker { .. } => Code::PermissionDenied,
            Refusal::Replay(ReplayError::Replayed) => Code::AlreadyExists,
            Refusal::Replay(ReplayError::Full(_)) => Code::ResourceExhausted,
            Refusal::Replay(_) => Code::FailedPrecondition,
            Refusal::Limit(_) | Refusal::InputTooLarge { .. } => Code::OutOfRange,
            Refusal::MissingEnvelope | Refusal::Malformed(_) | Refusal::BadField { .. } => {
                Code::InvalidArgument
            }
        };
        Status::new(code, self.to_string())
    }
}

fn fixed<const N: usize>(field: &'static str, bytes: &[u8]) -> Result<[u8; N], Refusal> {
    bytes.try_into().map_err(|_| Refusal::BadField {
        field,
        want: N,
        got: bytes.len(),
    })
}

/// Verifies, decodes and checks a job envelope addressed to `me`. Freshness
/// against replays is checked separately (it needs the node's memory).
pub fn admit(
    request: &pb::ExecuteRequest,
    me: PeerId,
    policy: &Policy,
) -> Result<AdmittedJob, Refusal> {
    let signed = request.job.as_ref().ok_or(Refusal::MissingEnvelope)?;
    let verified = envelope::verify(signed, Domain::Job)?;
    let spec =
        pb::JobSpec::decode(verified.payload).map_err(|e| Refusal::Malformed(e.to_string()))?;
    let job_id = fixed::<32>("job_id", &spec.job_id)?;
    let module_hash = fixed::<32>("module_sha256", &spec.module_sha256)?;
    let nonce = fixed::<16>("nonce", &spec.nonce)?;
    let worker = PeerId::from_bytes(fixed::<32>("worker_id", &spec.worker_id)?);
    if worker != me {
        return Err(Refusal::WrongWorker {
            addressed: worker.short(),
            me: me.short(),
        });
    }
    let limits = Limits::from_pb(&spec.limits.unwrap_or_default(), &policy.default_limits);
    if let Some(e) = limits.exceeds(&policy.max_limits) {
        return Err(Refusal::Limit(e));
    }
    let input = (spec.stdin.len() + spec.args.iter().map(String::len).sum::<usize>()) as u64;
    if input > policy.max_input_bytes {
        return Err(Refusal::InputTooLarge {
            got: input,
            max: policy.max_input_bytes,
        });
    }
    Ok(AdmittedJob {
        submitter: verified.signer,
        job_id,
        module_hash,
        nonce,
        limits,
        spec,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use peergrid_proto::Identity;

    fn policy() -> Policy {
        Policy {
            default_limits: Limits::default(),
            max_limits: Limits::default(),
            max_input_bytes: 1024,
        }
    }

    fn spec(worker: PeerId) -> pb::JobSpec {
        pb::JobSpec {
            job_id: vec![1; 32],
            module_sha256: vec![2; 32],
            worker_id: worker.as_bytes().to_vec(),
            nonce: vec![3; 16],
            stdin: b"hi".to_vec(),
            ..Default::default()
        }
    }

    fn request(by: &Identity, spec: &pb::JobSpec) -> pb::ExecuteRequest {
        pb::ExecuteRequest {
            job: Some(envelope::sign(by, Domain::Job, spec.encode_to_vec())),
        }
    }

    #[test]
    fn a_good_job_is_admitted() {
        let (sub, me) = (Identity::generate(), Identity::generate().peer_id());
        let job = admit(&request(&sub, &spec(me)), me, &policy()).unwrap();
        assert_eq!(job.submitter, sub.peer_id());
        assert_eq!(job.limits, Limits::default());
    }

    #[test]
    fn every_refusal_names_its_reason() {
        let (sub, me) = (Identity::generate(), Identity::generate().peer_id());
        let other = Identity::generate().peer_id();
        let p = policy();

        let err = admit(&pb::ExecuteRequest { job: None }, me, &p).unwrap_err();
        assert_eq!(err.to_status().code(), Code::InvalidArgument);

        let mut tampered = request(&sub, &spec(me));
        if let Some(job) = tampered.job.as_mut() {
            job.payload[0] ^= 1;
        }
        let err = admit(&tampered, me, &p).unwrap_err();
        assert_eq!(err.to_status().code(), Code::Unauthenticated, "{err}");

        let garbage = pb::ExecuteRequest {
            job: Some(envelope::sign(&sub, Domain::Job, vec![0xff; 7])),
        };
        assert!(matches!(
            admit(&garbage, me, &p),
            Err(Refusal::Malformed(_))
        ));

        let err = admit(&request(&sub, &spec(other)), me, &p).unwrap_err();
        assert_eq!(err.to_status().code(), Code::PermissionDenied);

        let mut short = spec(me);
        short.nonce = vec![1; 3];
        assert_eq!(
            admit(&request(&sub, &short), me, &p).unwrap_err(),
            Refusal::BadField {
                field: "nonce",
                want: 16,
                got: 3
            }
        );

        let mut greedy = spec(me);
        greedy.limits = Some(pb::JobLimits {
            memory_bytes: u64::MAX,
            ..Default::default()
        });
        assert!(matches!(
            admit(&request(&sub, &greedy), me, &p),
            Err(Refusal::Limit(_))
        ));

        let mut big = spec(me);
        big.stdin = vec![0; 2048];
        assert!(matches!(
            admit(&request(&sub, &big), me, &p),
            Err(Refusal::InputTooLarge { .. })
        ));

        // A result envelope can't pass as a job.
        let as_result = pb::ExecuteRequest {
            job: Some(envelope::sign(
                &sub,
                Domain::Result,
                spec(me).encode_to_vec(),
            )),
        };
        assert!(matches!(
            admit(&as_result, me, &p),
            Err(Refusal::Signature(_))
        ));
    }
}
