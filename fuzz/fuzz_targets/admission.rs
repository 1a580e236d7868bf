//! The worker's job admission, `peergrid_worker::admission::admit`, on
//! untrusted input. First byte 1: the rest is a `JobSpec` payload, signed
//! as a job by a fixed submitter (so the fuzzer gets past the signature
//! and reaches decoding, field lengths, addressing, limits and input caps).
//! Any other first byte: the rest is a raw `pb::ExecuteRequest`.
//!
//! Never panics; whatever is admitted was signed by the envelope's key, is
//! addressed to this worker and fits the policy; every refusal maps to a
//! gRPC status.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use peergrid_fuzz::{identities, mode, signer, verbose};
use peergrid_proto::{Domain, PeerId, envelope, pb};
use peergrid_worker::admission::{Policy, admit};
use prost::Message;
use scheduler_lib::Limits;

/// The worker's identity: `identities()[1]` (seeds address jobs to it).
fn me() -> PeerId {
    identities()[1].peer_id()
}

fn policy() -> Policy {
    Policy {
        default_limits: Limits {
            fuel: 1_000_000,
            memory_bytes: 16 << 20,
            wall_time: Duration::from_secs(10),
            max_output_bytes: 1 << 20,
            max_stderr_bytes: 64 << 10,
        },
        max_limits: Limits::default(),
        max_input_bytes: 4096,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((signed_mode, rest)) = mode(data) else {
        return;
    };
    let request = if signed_mode {
        pb::ExecuteRequest {
            job: Some(envelope::sign(signer(), Domain::Job, rest.to_vec())),
        }
    } else {
        match pb::ExecuteRequest::decode(rest) {
            Ok(request) => request,
            Err(_) => return,
        }
    };
    let policy = policy();
    let admitted = admit(&request, me(), &policy);
    if verbose() {
        eprintln!("{:?}", admitted.as_ref().map(|job| job.limits.clone()));
    }
    match admitted {
        Ok(job) => {
            let signed = request.job.as_ref().expect("admitted without an envelope");
            assert_eq!(
                Some(job.submitter),
                PeerId::from_public_key_bytes(&signed.public_key)
            );
            assert_eq!(job.spec.worker_id.as_slice(), me().as_bytes());
            assert_eq!(job.limits.exceeds(&policy.max_limits), None);
            let input = job.spec.stdin.len() + job.spec.args.iter().map(String::len).sum::<usize>();
            assert!(input as u64 <= policy.max_input_bytes);
        }
        Err(refusal) => {
            let _ = refusal.to_status();
        }
    }
});
