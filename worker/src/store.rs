//! The module store: WASM modules this node has received, on disk under
//! `<data-dir>/modules/<sha256>.wasm`, so they survive restarts and are
//! never uploaded twice.
//!
//! Uploads stream into a temporary file while being hashed; the file is
//! renamed into place only when the hash matches the header, so a store
//! never holds a module under a wrong name.

use std::io::Write;
use std::path::{Path, PathBuf};

use peergrid_proto::Sha256Hash;
use sha2::{Digest, Sha256};

/// On-disk, content-addressed module storage.
#[derive(Debug, Clone)]
pub struct ModuleStore {
    dir: PathBuf,
}

/// Why a module could not be stored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The bytes received do not hash to the announced hash.
    #[error("module bytes hash to {actual}, the upload announced {announced}")]
    HashMismatch {
        /// Hex of the announced hash.
        announced: String,
        /// Hex of the hash of the bytes.
        actual: String,
    },
    /// More or fewer bytes than announced.
    #[error("module upload announced {announced} bytes but sent {received}")]
    SizeMismatch {
        /// Bytes announced in the header.
        announced: u64,
        /// Bytes received.
        received: u64,
    },
    /// Disk I/O failed.
    #[error("module store I/O: {0}")]
    Io(#[from] std::io::Error),
}

impl ModuleStore {
    /// Opens (creating) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir)?;
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    fn path(&self, hash: &Sha256Hash) -> PathBuf {
        self.dir.join(format!("{}.wasm", hex::encode(hash)))
    }

    /// Whether the module is stored.
    pub fn has(&self, hash: &Sha256Hash) -> bool {
        self.path(hash).is_file()
    }

    /// Reads a stored module.
    pub fn read(&self, hash: &Sha256Hash) -> Result<Vec<u8>, StoreError> {
        Ok(std::fs::read(self.path(hash))?)
    }

    /// Starts an upload of `announced_size` bytes that must hash to `hash`.
    pub fn begin(&self, hash: Sha256Hash, announced_size: u64) -> Result<Upload, StoreError> {
        let file = tempfile::NamedTempFile::new_in(&self.dir)?;
        Ok(Upload {
            hash,
            announced_size,
            received: 0,
            hasher: Sha256::new(),
            file,
            target: self.path(&hash),
        })
    }
}

/// A module upload in progress.
#[derive(Debug)]
pub struct Upload {
    hash: Sha256Hash,
    announced_size: u64,
    received: u64,
    hasher: Sha256,
    file: tempfile::NamedTempFile,
    target: PathBuf,
}

impl Upload {
    /// Appends the next chunk; refuses bytes beyond the announced size.
    pub fn write(&mut self, chunk: &[u8]) -> Result<(), StoreError> {
        let received = self.received + chunk.len() as u64;
        if received > self.announced_size {
            return Err(StoreError::SizeMismatch {
                announced: self.announced_size,
                received,
            });
        }
        self.hasher.update(chunk);
        self.file.write_all(chunk)?;
        self.received = received;
        Ok(())
    }

    /// Checks size and hash, then moves the module into place.
    pub fn finish(self) -> Result<(), StoreError> {
        if self.received != self.announced_size {
            return Err(StoreError::SizeMismatch {
                announced: self.announced_size,
                received: self.received,
            });
        }
        let actual: Sha256Hash = self.hasher.finalize().into();
        if actual != self.hash {
            return Err(StoreError::HashMismatch {
                announced: hex::encode(self.hash),
                actual: hex::encode(actual),
            });
        }
        self.file.as_file().sync_all()?;
        self.file
            .persist(&self.target)
            .map_err(|e| StoreError::Io(e.error))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use peergrid_proto::sha256;

    #[test]
    fn stores_only_what_hashes_right() {
        let dir = tempfile::tempdir().unwrap();
        let store = ModuleStore::open(dir.path()).unwrap();
        let bytes = b"\0asm module bytes".to_vec();
        let hash = sha256(&bytes);
        let mut up = store.begin(hash, bytes.len() as u64).unwrap();
        up.write(&bytes[..5]).unwrap();
        up.write(&bytes[5..]).unwrap();
        up.finish().unwrap();
        assert!(store.has(&hash));
        assert_eq!(store.read(&hash).unwrap(), bytes);

        let wrong = sha256(b"other");
        let mut up = store.begin(wrong, bytes.len() as u64).unwrap();
        up.write(&bytes).unwrap();
        assert!(matches!(up.finish(), Err(StoreError::HashMismatch { .. })));
        assert!(!store.has(&wrong));

        let mut up = store.begin(hash, 3).unwrap();
        assert!(matches!(
            up.write(&bytes),
            Err(StoreError::SizeMismatch { .. })
        ));
    }
}
