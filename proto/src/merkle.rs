//! Merkle trees over signed messages: one signature for many envelopes.
//!
//! Signing costs about 18 µs and checking about 32 µs per signature, which
//! caps a grid that signs every job and every result separately near 5,000
//! jobs per second. A batch of messages is instead hashed into a tree, the
//! author signs the root once, and each envelope carries the path from its
//! leaf to that root ([`pb::MerkleProof`]), so every envelope can still be
//! checked on its own, offline, years later.
//!
//! - A leaf is `SHA-256(0x00 || domain tag || payload)`: the domain is part
//!   of the leaf, so a leaf signed as a result is never accepted as a job.
//! - An inner node is `SHA-256(0x01 || left || right)`: the prefixes keep a
//!   leaf from ever passing as an inner node (or the reverse).
//! - A level with an odd node out carries it up unchanged, so a proof has no
//!   sibling for that level.

use sha2::{Digest, Sha256};

use crate::envelope::Domain;
use crate::hash::Sha256Hash;
use crate::pb;

/// Most siblings a proof may carry: a tree of up to 2^32 leaves.
pub const MAX_DEPTH: usize = 32;

/// The leaf of `payload` as a message of kind `domain`.
pub fn leaf(domain: Domain, payload: &[u8]) -> Sha256Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(domain.tag());
    h.update(payload);
    h.finalize().into()
}

/// The inner node over `left` and `right`.
fn node(left: &Sha256Hash, right: &Sha256Hash) -> Sha256Hash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of the tree over `leaves` and the proof of every leaf, in order.
/// `None` for no leaves.
pub fn build(leaves: &[Sha256Hash]) -> Option<(Sha256Hash, Vec<pb::MerkleProof>)> {
    if leaves.is_empty() {
        return None;
    }
    let mut proofs = vec![pb::MerkleProof::default(); leaves.len()];
    // `at[i]`: the index, in the current level, of the node leaf i is under.
    let mut at: Vec<usize> = (0..leaves.len()).collect();
    let mut level = leaves.to_vec();
    while level.len() > 1 {
        for (proof, i) in proofs.iter_mut().zip(at.iter_mut()) {
            let sibling = *i ^ 1;
            if sibling < level.len() {
                if *i & 1 == 1 {
                    proof.left |= 1 << proof.siblings.len();
                }
                proof.siblings.push(level[sibling].to_vec());
            }
            *i /= 2;
        }
        level = level
            .chunks(2)
            .map(|pair| match pair {
                [left, right] => node(left, right),
                [odd] => *odd,
                _ => unreachable!("chunks(2) yields one or two"),
            })
            .collect();
    }
    Some((level[0], proofs))
}

/// The root that `proof` leads to from `leaf`, or why the proof is malformed.
pub fn root(leaf: Sha256Hash, proof: &pb::MerkleProof) -> Result<Sha256Hash, ProofError> {
    if proof.siblings.len() > MAX_DEPTH {
        return Err(ProofError::TooDeep(proof.siblings.len()));
    }
    // (Shifting by at most MAX_DEPTH < 64 bits.)
    if proof.left >> proof.siblings.len() != 0 {
        return Err(ProofError::StrayBits);
    }
    let mut at = leaf;
    for (level, sibling) in proof.siblings.iter().enumerate() {
        let sibling: Sha256Hash = sibling
            .as_slice()
            .try_into()
            .map_err(|_| ProofError::BadSibling(sibling.len()))?;
        at = if proof.left >> level & 1 == 1 {
            node(&sibling, &at)
        } else {
            node(&at, &sibling)
        };
    }
    Ok(at)
}

/// Why a Merkle proof is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// More siblings than any tree peergrid builds.
    #[error("Merkle proof has {0} siblings, at most {MAX_DEPTH} allowed")]
    TooDeep(usize),
    /// A sibling is not a 32-byte hash.
    #[error("Merkle proof sibling is {0} bytes, expected 32")]
    BadSibling(usize),
    /// `left` has bits set past the last sibling.
    #[error("Merkle proof direction bits name siblings it does not carry")]
    StrayBits,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: usize) -> Vec<Sha256Hash> {
        (0..n)
            .map(|i| leaf(Domain::Result, &i.to_le_bytes()))
            .collect()
    }

    #[test]
    fn every_proof_leads_to_the_root_for_every_tree_size() {
        for n in 1..=70 {
            let leaves = leaves(n);
            let (top, proofs) = build(&leaves).expect("non-empty");
            assert_eq!(proofs.len(), n);
            for (leaf, proof) in leaves.iter().zip(&proofs) {
                assert_eq!(root(*leaf, proof), Ok(top), "n={n}");
                assert!(proof.siblings.len() <= (n as f64).log2().ceil() as usize);
            }
        }
    }

    #[test]
    fn a_single_leaf_is_its_own_root() {
        let leaves = leaves(1);
        let (top, proofs) = build(&leaves).expect("non-empty");
        assert_eq!(top, leaves[0]);
        assert!(proofs[0].siblings.is_empty());
        assert!(build(&[]).is_none());
    }

    #[test]
    fn another_leaf_or_a_moved_proof_misses_the_root() {
        let leaves = leaves(9);
        let (top, proofs) = build(&leaves).expect("non-empty");
        let stranger = leaf(Domain::Result, b"not in the tree");
        assert_ne!(root(stranger, &proofs[3]), Ok(top));
        assert_ne!(root(leaves[3], &proofs[4]), Ok(top));
        let mut flipped = proofs[3].clone();
        flipped.left ^= 1;
        assert_ne!(root(leaves[3], &flipped), Ok(top));
        // The same payload under another domain is another leaf.
        let as_job = leaf(Domain::Job, &3usize.to_le_bytes());
        assert_ne!(root(as_job, &proofs[3]), Ok(top));
    }

    #[test]
    fn malformed_proofs_are_named() {
        let deep = pb::MerkleProof {
            siblings: vec![vec![0; 32]; MAX_DEPTH + 1],
            left: 0,
        };
        assert_eq!(root([0; 32], &deep), Err(ProofError::TooDeep(33)));
        let short = pb::MerkleProof {
            siblings: vec![vec![0; 31]],
            left: 0,
        };
        assert_eq!(root([0; 32], &short), Err(ProofError::BadSibling(31)));
        let stray = pb::MerkleProof {
            siblings: vec![vec![0; 32]],
            left: 0b10,
        };
        assert_eq!(root([0; 32], &stray), Err(ProofError::StrayBits));
    }
}
