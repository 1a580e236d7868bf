//! # peergrid-proto: what travels between peergrid nodes
//!
//! This crate is the wire format of peergrid and the cryptography that makes
//! every message attributable to its author:
//!
//! - [`pb`]: the protobuf messages and the tonic clients/servers of the
//!   `peergrid.v1` services (`Worker`, `Membership`, `Node`), generated
//!   from `peergrid/v1/*.proto`; [`FILE_DESCRIPTOR_SET`] describes them for
//!   gRPC server reflection.
//! - [`identity`]: a node's ed25519 [`Identity`] and its [`PeerId`]
//!   (SHA-256 of the public key), stored on disk with mode 0600.
//! - [`envelope`]: signing and verifying [`pb::SignedEnvelope`]s with a
//!   domain-separation prefix per message kind ([`Domain`]), so that a signed
//!   job can never be replayed as a signed result.
//! - [`signer`]: group-commit signing ([`BatchSigner`]): messages ready at
//!   about the same time share one signature.
//! - [`merkle`]: the Merkle trees that let one signature cover many
//!   envelopes ([`envelope::sign_many`]), each still checkable on its own.
//! - [`tls`]: TLS 1.3 between peers with self-signed certificates made
//!   from the identity keys, so the TLS peer *is* the peer id
//!   ([`tls::Transport`]).
//! - [`puzzle`]: the S/Kademlia static puzzle that makes identities cost
//!   work to create (`grind`) and nothing to check (`solves`).
//!
//! Signatures cover the exact bytes that travel; a receiver verifies before
//! it decodes and never re-encodes to verify.
//!
//! ```
//! use peergrid_proto::{Domain, Identity, envelope};
//!
//! let author = Identity::generate();
//! let signed = envelope::sign(&author, Domain::Job, b"encoded JobSpec".to_vec());
//! let verified = envelope::verify(&signed, Domain::Job).unwrap();
//! assert_eq!(verified.signer, author.peer_id());
//! assert!(envelope::verify(&signed, Domain::Result).is_err());
//! ```
#![deny(missing_docs)]

pub mod envelope;
pub mod hash;
pub mod identity;
pub mod merkle;
pub mod puzzle;
pub mod signer;
pub mod tls;

/// Generated protobuf and gRPC code for `peergrid.v1`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod pb {
    tonic::include_proto!("peergrid.v1");
}

/// The encoded `google.protobuf.FileDescriptorSet` of every
/// `peergrid/v1/*.proto` file, comments included: what a node's gRPC server
/// reflection serves, so generic tools (grpcurl, grpcui, Postman) can list
/// and call its services without the `.proto` files.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    tonic::include_file_descriptor_set!("peergrid_v1_descriptor");

pub use envelope::{Domain, EnvelopeError, Verified};
pub use hash::{Sha256Hash, sha256};
pub use identity::{Identity, IdentityError, PeerId};
pub use signer::BatchSigner;
