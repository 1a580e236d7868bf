//! Result certificates end to end: a real grid with one liar accepts a
//! result; its certificate verifies offline, survives encoding, and fails
//! with a named reason when the verifier asks for more signers than agreed,
//! bans or does not know a signer, or when the liar's claim is swapped in.

use std::collections::HashSet;

use peergrid_proto::{PeerId, sha256};
use peergrid_tests::{example_job, grid, scheduler};
use peergrid_worker::fault::Fault;
use scheduler_lib::certificate::{ClaimError, Field};
use scheduler_lib::{Certificate, CertificateError, Job, JobFailure, Verdict, VerifyPolicy};

fn min(n: usize) -> VerifyPolicy {
    VerifyPolicy {
        min_signatures: n,
        ..VerifyPolicy::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_of_a_grid_with_one_liar_verifies_offline_and_refuses_tampering() {
    let grid = grid(&[None, None, Some(Fault::FlipLastByte)]).await;
    let honest: HashSet<PeerId> = grid.nodes[..2].iter().map(|n| n.peer_id()).collect();
    let liar = grid.nodes[2].peer_id();
    let sched = scheduler(&grid);
    let primes = &peergrid_jobs::PRIMES;
    let report = sched.submit(&example_job(primes, 3)).await.unwrap();
    let Verdict::Accepted {
        output,
        dissenting_workers,
        ..
    } = &report.verdict
    else {
        panic!("expected acceptance, got {:?}", report.verdict);
    };
    assert_eq!(dissenting_workers.len(), 1);
    assert_eq!(dissenting_workers[0].worker, liar);

    // Built from the report, carried as bytes, checked with nothing else.
    let built = Certificate::from_report(&report).expect("an accepted result has a certificate");
    let certificate = Certificate::decode(&built.encode()).unwrap();
    assert_eq!(certificate, built);
    assert_eq!(certificate.job_id, report.job_id);
    assert_eq!(certificate.module_sha256, sha256(primes.wasm));
    assert_eq!(certificate.input_sha256, sha256(primes.sample_stdin));
    assert_eq!(certificate.result, Ok(()));
    assert!(certificate.matches_output(&output.stdout));
    assert!(certificate.matches_output(primes.sample_stdout));
    assert_eq!(
        certificate.claims.len(),
        2,
        "only the agreeing workers sign"
    );

    // Two agreed: valid with the default policy (2), signed by the honest two.
    let verified = certificate.verify(&VerifyPolicy::default()).unwrap();
    assert_eq!(
        verified.signers.iter().copied().collect::<HashSet<_>>(),
        honest
    );
    assert!(!verified.signers.contains(&liar));
    assert!(verified.not_counted.is_empty());

    // Three required, two agreed.
    assert_eq!(
        certificate.verify(&min(3)).unwrap_err(),
        CertificateError::TooFewSignatures {
            got: 2,
            need: 3,
            not_counted: vec![]
        }
    );

    // A banned signer is not counted: one left, two needed.
    let banned = *honest.iter().next().unwrap();
    let mut policy = min(2);
    policy.banned.insert(banned);
    let err = certificate.verify(&policy).unwrap_err();
    let CertificateError::TooFewSignatures {
        got: 1,
        need: 2,
        not_counted,
    } = &err
    else {
        panic!("expected too few signatures, got {err:?}");
    };
    assert_eq!(not_counted.len(), 1);
    assert_eq!(not_counted[0].status, Err(ClaimError::Banned(banned)));
    assert!(err.to_string().contains("banned"), "{err}");

    // Known signers required: strangers (even the liar) do not count; the
    // honest pair does.
    let strangers = VerifyPolicy {
        known: Some([liar].into_iter().collect()),
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
    let known = VerifyPolicy {
        known: Some(honest.clone()),
        ..min(2)
    };
    certificate.verify(&known).unwrap();

    // The liar's signed claim swapped in for an honest one: named as a claim
    // for another output, and the certificate is invalid as a whole.
    let lie = &dissenting_workers[0].signed_claim;
    let mut swapped = certificate.clone();
    swapped.claims[1] = lie.clone();
    let err = swapped.verify(&min(1)).unwrap_err();
    let CertificateError::InvalidClaim {
        index: 1,
        reason: ClaimError::Mismatch { field, .. },
    } = &err
    else {
        panic!("expected claim 1 to mismatch, got {err:?}");
    };
    assert_eq!(*field, Field::Output);
    assert!(
        err.to_string().starts_with("claim 1 is for another output"),
        "{err}"
    );

    // Nor can the liar's output be certified with the honest claims.
    let mut relabelled = certificate.clone();
    relabelled.output_sha256 = dissenting_workers[0].output_sha256;
    relabelled.claims.push(lie.clone());
    let err = relabelled.verify(&min(1)).unwrap_err();
    assert!(
        matches!(err, CertificateError::InvalidClaim { index: 0, .. }),
        "{err:?}"
    );

    // An agreed failure is certified too: a module that is not WASM.
    let report = sched
        .submit(&Job::new(b"not a module".to_vec()).replicas(3))
        .await
        .unwrap();
    let certificate = Certificate::from_report(&report).expect("the failure was agreed");
    let verified = Certificate::decode(&certificate.encode())
        .unwrap()
        .verify(&VerifyPolicy::default())
        .unwrap();
    assert!(
        matches!(verified.result, Err(JobFailure::InvalidModule(_))),
        "{:?}",
        verified.result
    );
}
