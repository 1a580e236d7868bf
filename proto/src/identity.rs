//! Node identity: an ed25519 key pair and the peer id derived from it.
//!
//! A node creates its identity on first start and keeps it in its data
//! directory (`identity.key`, 32 secret bytes, file mode 0600). The
//! [`PeerId`] is the SHA-256 of the public key; it names the node everywhere
//! (job envelopes, result claims, logs) and is printed as lowercase hex.

use std::fmt;
use std::io::Write;
use std::path::Path;
use std::str::FromStr;

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};

use crate::hash::sha256;

/// Name of the secret key file inside a data directory.
pub const KEY_FILE: &str = "identity.key";

/// The identity of a node: who it is, and the key it signs with.
#[derive(Clone)]
pub struct Identity {
    signing: SigningKey,
    peer_id: PeerId,
}

impl Identity {
    /// A fresh random identity (from the operating system's RNG).
    pub fn generate() -> Self {
        Self::from_secret(SigningKey::generate(&mut rand::rngs::OsRng).to_bytes())
    }

    /// The identity with this 32-byte ed25519 secret key.
    pub fn from_secret(secret: [u8; 32]) -> Self {
        let signing = SigningKey::from_bytes(&secret);
        let peer_id = PeerId::from_public_key(&signing.verifying_key());
        Self { signing, peer_id }
    }

    /// Loads the identity stored in `dir`, creating one if there is none.
    /// Returns the identity and whether it was created now.
    pub fn load_or_create(dir: &Path) -> Result<(Self, bool), IdentityError> {
        let path = dir.join(KEY_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let secret: [u8; 32] =
                    bytes
                        .as_slice()
                        .try_into()
                        .map_err(|_| IdentityError::Corrupt {
                            path: path.display().to_string(),
                            len: bytes.len(),
                        })?;
                Ok((Self::from_secret(secret), false))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let identity = Self::generate();
                identity.save(dir)?;
                Ok((identity, true))
            }
            Err(source) => Err(IdentityError::Io {
                path: path.display().to_string(),
                source,
            }),
        }
    }

    /// Writes the secret key to `dir/identity.key` with mode 0600, refusing to
    /// overwrite an existing key.
    pub fn save(&self, dir: &Path) -> Result<(), IdentityError> {
        let path = dir.join(KEY_FILE);
        let io = |source| IdentityError::Io {
            path: path.display().to_string(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&path).map_err(io)?;
        file.write_all(&self.signing.to_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(())
    }

    /// This node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// The 32-byte ed25519 public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.signing.verifying_key().to_bytes()
    }

    /// The 32-byte secret seed (for the TLS certificate's key).
    pub(crate) fn secret_bytes(&self) -> [u8; 32] {
        self.signing.to_bytes()
    }

    /// Signs `message` (the caller adds any domain prefix).
    pub(crate) fn sign_raw(&self, message: &[u8]) -> [u8; 64] {
        self.signing.sign(message).to_bytes()
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("peer_id", &self.peer_id)
            .finish_non_exhaustive()
    }
}

/// Why an identity could not be loaded or stored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// Reading or writing the key file failed.
    #[error("identity key file {path}: {source}")]
    Io {
        /// The key file.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The key file does not hold exactly 32 bytes.
    #[error("identity key file {path} is corrupt: {len} bytes, expected 32")]
    Corrupt {
        /// The key file.
        path: String,
        /// Its length.
        len: usize,
    },
}

/// The name of a peer: SHA-256 of its ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId([u8; 32]);

impl PeerId {
    /// The peer id of this public key.
    pub fn from_public_key(key: &VerifyingKey) -> Self {
        Self(sha256(key.as_bytes()))
    }

    /// The peer id of a 32-byte public key as found on the wire, or `None` if
    /// the bytes are not a valid ed25519 public key.
    pub fn from_public_key_bytes(bytes: &[u8]) -> Option<Self> {
        let bytes: [u8; 32] = bytes.try_into().ok()?;
        VerifyingKey::from_bytes(&bytes)
            .ok()
            .map(|k| Self::from_public_key(&k))
    }

    /// Wraps 32 raw peer-id bytes (as carried in `worker_id` fields).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Reads a peer id from a wire field, or `None` if it is not 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The first 12 hex digits: enough to tell peers apart in a table or log.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..6])
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerId({})", self.short())
    }
}

impl FromStr for PeerId {
    type Err = hex::FromHexError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(s, &mut bytes)?;
        Ok(Self(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_round_trips_with_mode_0600() {
        let dir = std::env::temp_dir().join(format!("pg-id-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (created, fresh) = Identity::load_or_create(&dir).unwrap();
        assert!(fresh);
        let (loaded, fresh) = Identity::load_or_create(&dir).unwrap();
        assert!(!fresh);
        assert_eq!(created.peer_id(), loaded.peer_id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(created.save(&dir).is_err(), "must not overwrite a key");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn corrupt_key_file_is_a_clear_error() {
        let dir = std::env::temp_dir().join(format!("pg-id-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(KEY_FILE), b"short").unwrap();
        let err = Identity::load_or_create(&dir).unwrap_err();
        assert!(err.to_string().contains("corrupt"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn peer_id_parses_its_display() {
        let id = Identity::generate().peer_id();
        assert_eq!(id.to_string().parse::<PeerId>().unwrap(), id);
        assert_eq!(id.short().len(), 12);
    }
}
