//! `peergrid verify`: check a result certificate offline.
//!
//! Thin glue over [`scheduler_lib::certificate`]: read the certificate (and,
//! if asked, the output it should certify), build the [`VerifyPolicy`] from
//! the flags, and print what was checked, claim by claim, ending in `VALID`
//! or `INVALID: reason`. Exit 0 when valid, [`EXIT_INVALID`] when not, 1 when
//! a file cannot be read.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use peergrid_proto::sha256;
use scheduler_lib::certificate::{
    Certificate, ClaimCheck, VerifiedCertificate, VerifyPolicy, describe_result,
};

use super::args::{OutputFormat, VerifyArgs};
use super::{EXIT_INVALID, read_input};

/// Verifies the certificate and prints the report on stdout.
pub fn run(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(&args.certificate)
        .with_context(|| format!("reading certificate {}", args.certificate.display()))?;
    let output = match &args.output {
        Some(path) => Some((path.clone(), read_input(Some(path))?)),
        None => None,
    };
    let policy = VerifyPolicy {
        min_signatures: usize::try_from(args.min_signatures).unwrap_or(usize::MAX),
        known: (!args.known_peers.is_empty()).then(|| args.known_peers.iter().copied().collect()),
        banned: args.banned_peers.iter().copied().collect(),
    };
    let report = Report::new(&args.certificate, &bytes, output, &policy);
    let text = match args.output_format {
        OutputFormat::Text => report.text(),
        OutputFormat::Json => report.json(),
    };
    print!("{text}");
    Ok(if report.verdict.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_INVALID)
    })
}

/// Everything `verify` found, ready to print.
struct Report {
    /// The certificate file.
    path: PathBuf,
    /// The decoded certificate, if it decoded.
    certificate: Option<Certificate>,
    /// Every claim's verdict (empty when the certificate did not decode).
    claims: Vec<ClaimCheck>,
    /// The output file given with `--output`, and whether it is the
    /// certified output.
    output: Option<(PathBuf, bool)>,
    /// Signatures required.
    need: usize,
    /// The verified certificate, or why it is invalid.
    verdict: Result<VerifiedCertificate, String>,
}

impl Report {
    fn new(
        path: &Path,
        bytes: &[u8],
        output: Option<(PathBuf, Vec<u8>)>,
        policy: &VerifyPolicy,
    ) -> Self {
        let need = policy.min_signatures.max(1);
        let certificate = match Certificate::decode(bytes) {
            Ok(certificate) => certificate,
            Err(error) => {
                return Self {
                    path: path.to_path_buf(),
                    certificate: None,
                    claims: Vec::new(),
                    output: None,
                    need,
                    verdict: Err(error.to_string()),
                };
            }
        };
        let claims = certificate.check(policy);
        let output = output.map(|(file, bytes)| {
            let matches = certificate.matches_output(&bytes);
            (file, bytes, matches)
        });
        let verdict = match (certificate.verify(policy), &output) {
            (Err(error), _) => Err(error.to_string()),
            (Ok(_), Some((file, bytes, false))) => Err(format!(
                "{} is not the certified output: its sha256 is {}, the certificate says {}",
                file.display(),
                hex::encode(sha256(bytes)),
                hex::encode(certificate.output_sha256)
            )),
            (Ok(verified), _) => Ok(verified),
        };
        Self {
            path: path.to_path_buf(),
            certificate: Some(certificate),
            claims,
            output: output.map(|(file, _, matches)| (file, matches)),
            need,
            verdict,
        }
    }

    fn counted(&self) -> usize {
        self.claims.iter().filter(|c| c.status.is_ok()).count()
    }

    /// The human-readable report.
    fn text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "certificate  {}", self.path.display());
        if let Some(c) = &self.certificate {
            let _ = writeln!(out, "job          {}", hex::encode(c.job_id));
            let _ = writeln!(out, "module       sha256 {}", hex::encode(c.module_sha256));
            let _ = writeln!(out, "input        sha256 {}", hex::encode(c.input_sha256));
            let _ = writeln!(out, "output       sha256 {}", hex::encode(c.output_sha256));
            if let Some((file, matches)) = &self.output {
                let verdict = if *matches {
                    "matches"
                } else {
                    "DOES NOT MATCH"
                };
                let _ = writeln!(out, "output file  {}: {verdict}", file.display());
            }
            let _ = writeln!(out, "outcome      {}", describe_result(&c.result));
            let _ = writeln!(
                out,
                "signatures   {} counted of {} claims, {} needed",
                self.counted(),
                self.claims.len(),
                self.need
            );
            for claim in &self.claims {
                let signer = claim
                    .signer
                    .map_or_else(|| "(not an ed25519 key)".to_string(), |p| p.to_string());
                let _ = match &claim.status {
                    Ok(()) => writeln!(out, "  valid        claim {}  {signer}", claim.index),
                    Err(reason) => writeln!(
                        out,
                        "  {:<12} claim {}  {signer}  {reason}",
                        if reason.is_fatal() {
                            "INVALID"
                        } else {
                            "not counted"
                        },
                        claim.index
                    ),
                };
            }
        }
        let _ = match &self.verdict {
            Ok(verified) => writeln!(
                out,
                "VALID: {} distinct signers agree ({} needed)",
                verified.signers.len(),
                self.need
            ),
            Err(reason) => writeln!(out, "INVALID: {reason}"),
        };
        out
    }

    /// The report as one JSON object.
    fn json(&self) -> String {
        use serde_json::{Value, json};
        let hash = |f: fn(&Certificate) -> [u8; 32]| -> Value {
            self.certificate
                .as_ref()
                .map_or(Value::Null, |c| Value::String(hex::encode(f(c))))
        };
        let claims: Vec<Value> = self
            .claims
            .iter()
            .map(|claim| {
                let (status, reason) = match &claim.status {
                    Ok(()) => ("valid", Value::Null),
                    Err(reason) => (
                        if reason.is_fatal() {
                            "invalid"
                        } else {
                            "not_counted"
                        },
                        Value::String(format!("claim {} {reason}", claim.index)),
                    ),
                };
                json!({
                    "index": claim.index,
                    "signer": claim.signer.map(|p| p.to_string()),
                    "status": status,
                    "reason": reason,
                })
            })
            .collect();
        let report = json!({
            "certificate": self.path.display().to_string(),
            "valid": self.verdict.is_ok(),
            "reason": self.verdict.as_ref().err(),
            "job_id": hash(|c| c.job_id),
            "module_sha256": hash(|c| c.module_sha256),
            "input_sha256": hash(|c| c.input_sha256),
            "output_sha256": hash(|c| c.output_sha256),
            "outcome": self.certificate.as_ref().map(|c| describe_result(&c.result)),
            "output_file": self.output.as_ref().map(|(file, matches)| json!({
                "path": file.display().to_string(),
                "matches": matches,
            })),
            "min_signatures": self.need,
            "counted_signatures": self.counted(),
            "claims": claims,
        });
        let mut text = serde_json::to_string_pretty(&report).unwrap_or_else(|_| report.to_string());
        text.push('\n');
        text
    }
}
