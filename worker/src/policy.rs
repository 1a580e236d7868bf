//! Operator policy against malware distribution: which submitters a node
//! serves and which modules it runs, by allow-list and deny-list.
//!
//! A submitter is named by its peer id (the sha256 of its ed25519 key, as
//! `peergrid keygen` prints it), a module by its sha256; both in hex. A
//! deny-list entry always wins; a non-empty allow-list admits only what it
//! names. A refused job gets `PERMISSION_DENIED` naming the rule.

use std::collections::HashSet;

use peergrid_proto::{PeerId, Sha256Hash};

/// The operator's lists (part of [`crate::NodeConfig`]); all empty by
/// default, which serves everyone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OperatorPolicy {
    /// If non-empty, only these submitters are served.
    pub allow_submitters: HashSet<PeerId>,
    /// These submitters are never served.
    pub deny_submitters: HashSet<PeerId>,
    /// If non-empty, only these modules (sha256) are run or stored.
    pub allow_modules: HashSet<Sha256Hash>,
    /// These modules (sha256) are never run or stored.
    pub deny_modules: HashSet<Sha256Hash>,
}

/// The rule that refused a job.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyRefusal {
    /// The submitter is on the deny-list.
    #[error("operator policy: submitter {0} is on this worker's deny-submitter list")]
    SubmitterDenied(String),
    /// An allow-list is set and the submitter is not on it.
    #[error("operator policy: submitter {0} is not on this worker's allow-submitter list")]
    SubmitterNotAllowed(String),
    /// The module is on the deny-list.
    #[error("operator policy: module {0} is on this worker's deny-module list")]
    ModuleDenied(String),
    /// An allow-list is set and the module is not on it.
    #[error("operator policy: module {0} is not on this worker's allow-module list")]
    ModuleNotAllowed(String),
}

impl PolicyRefusal {
    /// `PERMISSION_DENIED`, naming the rule.
    pub fn to_status(&self) -> tonic::Status {
        tonic::Status::permission_denied(self.to_string())
    }
}

impl OperatorPolicy {
    /// Whether `submitter` may have jobs run here.
    pub fn check_submitter(&self, submitter: &PeerId) -> Result<(), PolicyRefusal> {
        if self.deny_submitters.contains(submitter) {
            return Err(PolicyRefusal::SubmitterDenied(submitter.to_string()));
        }
        if !self.allow_submitters.is_empty() && !self.allow_submitters.contains(submitter) {
            return Err(PolicyRefusal::SubmitterNotAllowed(submitter.to_string()));
        }
        Ok(())
    }

    /// Whether the module `hash` may be stored and run here.
    pub fn check_module(&self, hash: &Sha256Hash) -> Result<(), PolicyRefusal> {
        if self.deny_modules.contains(hash) {
            return Err(PolicyRefusal::ModuleDenied(hex::encode(hash)));
        }
        if !self.allow_modules.is_empty() && !self.allow_modules.contains(hash) {
            return Err(PolicyRefusal::ModuleNotAllowed(hex::encode(hash)));
        }
        Ok(())
    }

    /// Both checks, submitter first.
    pub fn check_job(&self, submitter: &PeerId, module: &Sha256Hash) -> Result<(), PolicyRefusal> {
        self.check_submitter(submitter)?;
        self.check_module(module)
    }
}

/// Parses a module hash: 64 hex digits.
pub fn parse_module_hash(text: &str) -> Result<Sha256Hash, String> {
    let mut hash = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut hash)
        .map_err(|e| format!("module hash must be 64 hex digits (sha256): {e}"))?;
    Ok(hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(b: u8) -> PeerId {
        PeerId::from_bytes([b; 32])
    }

    #[test]
    fn empty_policy_serves_everyone() {
        let p = OperatorPolicy::default();
        assert!(p.check_job(&peer(1), &[2; 32]).is_ok());
    }

    #[test]
    fn deny_lists_refuse_naming_the_rule() {
        let p = OperatorPolicy {
            deny_submitters: [peer(1)].into(),
            deny_modules: [[7; 32]].into(),
            ..OperatorPolicy::default()
        };
        let e = p.check_job(&peer(1), &[2; 32]).unwrap_err();
        assert!(matches!(e, PolicyRefusal::SubmitterDenied(_)));
        assert_eq!(e.to_status().code(), tonic::Code::PermissionDenied);
        assert!(e.to_string().contains("deny-submitter"), "{e}");
        let e = p.check_job(&peer(2), &[7; 32]).unwrap_err();
        assert!(e.to_string().contains("deny-module"), "{e}");
        assert!(e.to_string().contains(&hex::encode([7u8; 32])), "{e}");
        assert!(p.check_job(&peer(2), &[2; 32]).is_ok());
    }

    #[test]
    fn allow_lists_admit_only_what_they_name_and_deny_wins() {
        let p = OperatorPolicy {
            allow_submitters: [peer(1), peer(2)].into(),
            deny_submitters: [peer(2)].into(),
            allow_modules: [[5; 32]].into(),
            ..OperatorPolicy::default()
        };
        assert!(p.check_job(&peer(1), &[5; 32]).is_ok());
        assert!(matches!(
            p.check_submitter(&peer(3)),
            Err(PolicyRefusal::SubmitterNotAllowed(_))
        ));
        assert!(matches!(
            p.check_submitter(&peer(2)),
            Err(PolicyRefusal::SubmitterDenied(_))
        ));
        assert!(matches!(
            p.check_module(&[6; 32]),
            Err(PolicyRefusal::ModuleNotAllowed(_))
        ));
    }

    #[test]
    fn module_hashes_parse_from_hex() {
        let hex = "ab".repeat(32);
        assert_eq!(parse_module_hash(&hex).unwrap(), [0xab; 32]);
        assert!(parse_module_hash("abc").is_err());
    }
}
