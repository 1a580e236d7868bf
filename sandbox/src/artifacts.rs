//! The on-disk compiled-code cache ([`Config::artifact_dir`]): wasmtime
//! artifacts of successfully compiled modules, kept across restarts so a
//! worker does not recompile a module it already compiled, bounded in size
//! by deleting the least recently used files.
//!
//! # Files
//!
//! One file per module and engine, named
//! `<module sha256 hex>-<engine fingerprint>.cwasm`. The fingerprint is
//! the first 16 hex digits of a SHA-256 over wasmtime's
//! [`Engine::precompile_compatibility_hash`] (target, Cranelift flags,
//! tunables, wasm features and wasmtime's own version), so an artifact
//! made under another engine configuration or wasmtime version is never
//! even opened: it just ages out of the directory.
//!
//! Each file is a small header followed by the artifact exactly as
//! [`Engine::precompile_module`] or `Module::serialize` produced it:
//!
//! ```text
//! peergrid-cwasm/1\n  module sha256 (32 bytes)  artifact sha256 (32 bytes)  artifact
//! ```
//!
//! The checksum catches what wasmtime's own header check cannot: a file
//! torn by a crash or power loss (writes are not fsync'd; a temp file is
//! renamed into place), truncated, or with flipped bits in its code. A file
//! that fails any check is deleted and the module compiled afresh. The
//! checksum is integrity, not authenticity: the directory is this node's
//! own and only this node writes it (see the `SAFETY` comment in
//! `module.rs`).
//!
//! # Eviction
//!
//! After every write, files are deleted oldest modification time first
//! until the `.cwasm` files fit in [`Config::artifact_dir_max_bytes`].
//! Loading a file sets its modification time to now, so the order is least
//! recently *used*. Compile failures are never written: a budget failure may
//! be the machine's load, not the module's.

use std::fs::{self, File};
use std::hash::{Hash, Hasher};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};
use wasmtime::Engine;

use crate::module::ModuleHash;

/// First bytes of every artifact file: the format and its version.
const MAGIC: &[u8] = b"peergrid-cwasm/1\n";
/// Header length: magic, module hash, artifact hash.
const HEADER_BYTES: usize = MAGIC.len() + 32 + 32;
/// Extension of artifact files; eviction counts only these.
const EXTENSION: &str = "cwasm";
/// Extension of files being written.
const TEMP_EXTENSION: &str = "tmp";
/// Temp files older than this at start-up were left by a crash: deleted.
const STALE_TEMP: Duration = Duration::from_secs(3600);

/// Feeds everything a [`Hash`] implementation writes into SHA-256.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        // Never used: the fingerprint is read from the full digest.
        0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// The engine fingerprint used in file names: 16 hex digits of SHA-256 over
/// `engine`'s precompile compatibility hash. Two engines with the same
/// fingerprint load each other's artifacts.
pub(crate) fn fingerprint(engine: &Engine) -> String {
    let mut hasher = Sha256Hasher(Sha256::new());
    hasher.0.update(MAGIC);
    engine.precompile_compatibility_hash().hash(&mut hasher);
    let digest = hasher.0.finalize();
    hex::encode(&digest[..8])
}

/// The artifact directory of one sandbox.
#[derive(Debug)]
pub(crate) struct ArtifactDir {
    dir: PathBuf,
    max_bytes: u64,
    fingerprint: String,
    /// Makes temp file names unique within this process.
    temp_counter: AtomicU64,
}

impl ArtifactDir {
    /// Creates `dir` if needed and removes temp files a crash left behind.
    pub(crate) fn open(dir: &Path, max_bytes: u64, engine: &Engine) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        let this = Self {
            dir: dir.to_path_buf(),
            max_bytes,
            fingerprint: fingerprint(engine),
            temp_counter: AtomicU64::new(0),
        };
        this.remove_stale_temp_files();
        tracing::debug!(
            dir = %this.dir.display(),
            fingerprint = %this.fingerprint,
            max_bytes,
            "opened the compiled-artifact directory"
        );
        Ok(this)
    }

    /// The engine fingerprint in this directory's file names.
    pub(crate) fn engine_fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The file holding `hash`'s artifact for this engine.
    pub(crate) fn path(&self, hash: &ModuleHash) -> PathBuf {
        self.dir.join(format!(
            "{}-{}.{EXTENSION}",
            hex::encode(hash),
            self.fingerprint
        ))
    }

    /// The verified artifact of `hash`, or `None` if there is no file. A
    /// file that exists but fails its checks is deleted (and logged), and
    /// `Err` says why, so the caller can count it. Marks the file as
    /// recently used.
    pub(crate) fn load(&self, hash: &ModuleHash) -> Result<Option<Vec<u8>>, String> {
        let path = self.path(hash);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                // Unreadable (permissions, I/O error): treat as a miss but
                // say so; deleting might fail the same way.
                tracing::warn!(path = %path.display(), error = %e, "cannot read a compiled artifact");
                return Err(format!("read: {e}"));
            }
        };
        match verify(&bytes, hash) {
            Ok(()) => {
                touch(&path);
                let mut bytes = bytes;
                bytes.drain(..HEADER_BYTES);
                Ok(Some(bytes))
            }
            Err(problem) => {
                self.discard(hash, &problem);
                Err(problem)
            }
        }
    }

    /// Deletes `hash`'s file because of `problem` (logged).
    pub(crate) fn discard(&self, hash: &ModuleHash, problem: &str) {
        let path = self.path(hash);
        tracing::warn!(
            path = %path.display(),
            problem,
            "discarding a bad compiled artifact; the module will be compiled again"
        );
        if let Err(e) = fs::remove_file(&path)
            && e.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(path = %path.display(), error = %e, "cannot delete a bad compiled artifact");
        }
    }

    /// Writes `artifact` as `hash`'s file (temp file, then rename) and
    /// evicts least recently used files beyond the size limit. Returns
    /// whether the file was written; failures are logged, never fatal (the
    /// module is compiled and in memory either way).
    pub(crate) fn store(&self, hash: &ModuleHash, artifact: &[u8]) -> bool {
        let size = (HEADER_BYTES + artifact.len()) as u64;
        if size > self.max_bytes {
            tracing::debug!(
                module = %hex::encode(hash),
                size,
                max_bytes = self.max_bytes,
                "compiled artifact larger than the whole artifact directory; not stored"
            );
            return false;
        }
        let path = self.path(hash);
        let temp = self.dir.join(format!(
            ".{}-{}-{}.{TEMP_EXTENSION}",
            hex::encode(hash),
            std::process::id(),
            self.temp_counter.fetch_add(1, Ordering::Relaxed)
        ));
        let written = write_file(&temp, hash, artifact).and_then(|()| fs::rename(&temp, &path));
        if let Err(e) = written {
            tracing::warn!(path = %path.display(), error = %e, "cannot store a compiled artifact");
            let _ = fs::remove_file(&temp);
            return false;
        }
        tracing::debug!(path = %path.display(), size, "stored compiled artifact");
        self.evict();
        true
    }

    /// Deletes `.cwasm` files, least recently used first, until the rest
    /// fit in the size limit.
    pub(crate) fn evict(&self) {
        let mut files = match self.artifact_files() {
            Ok(files) => files,
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "cannot list the artifact directory");
                return;
            }
        };
        let mut total: u64 = files.iter().map(|f| f.size).sum();
        if total <= self.max_bytes {
            return;
        }
        // Oldest first; ties broken by name so the order is stable.
        files.sort_by(|a, b| a.modified.cmp(&b.modified).then(a.path.cmp(&b.path)));
        for file in files {
            if total <= self.max_bytes {
                break;
            }
            match fs::remove_file(&file.path) {
                Ok(()) => {
                    total = total.saturating_sub(file.size);
                    tracing::debug!(path = %file.path.display(), size = file.size, "evicted compiled artifact");
                }
                // Another sandbox on the same directory got there first.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    total = total.saturating_sub(file.size);
                }
                Err(e) => {
                    tracing::warn!(path = %file.path.display(), error = %e, "cannot evict a compiled artifact");
                }
            }
        }
    }

    /// Every `.cwasm` file with its size and modification time.
    fn artifact_files(&self) -> io::Result<Vec<FileInfo>> {
        let mut files = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some(EXTENSION) {
                continue;
            }
            // Deleted between listing and stat: skip.
            let Ok(metadata) = entry.metadata() else {
                continue;
            };
            if !metadata.is_file() {
                continue;
            }
            files.push(FileInfo {
                path,
                size: metadata.len(),
                modified: metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            });
        }
        Ok(files)
    }

    /// Deletes temp files older than [`STALE_TEMP`] (younger ones may be
    /// another sandbox's write in progress).
    fn remove_stale_temp_files(&self) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        let now = SystemTime::now();
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some(TEMP_EXTENSION) {
                continue;
            }
            let stale = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|modified| now.duration_since(modified).ok())
                .is_some_and(|age| age > STALE_TEMP);
            if stale {
                let _ = fs::remove_file(&path);
            }
        }
    }
}

/// What eviction needs to know about one file.
struct FileInfo {
    path: PathBuf,
    size: u64,
    modified: SystemTime,
}

/// Writes header and artifact to a new file at `path`.
fn write_file(path: &Path, hash: &ModuleHash, artifact: &[u8]) -> io::Result<()> {
    let mut file = File::create_new(path)?;
    file.write_all(MAGIC)?;
    file.write_all(hash)?;
    file.write_all(&Sha256::digest(artifact))?;
    file.write_all(artifact)
}

/// Checks a file's header against the module it should hold and its
/// artifact against the checksum.
fn verify(bytes: &[u8], hash: &ModuleHash) -> Result<(), String> {
    if bytes.len() < HEADER_BYTES {
        return Err(format!("truncated: {} bytes", bytes.len()));
    }
    let (magic, rest) = bytes.split_at(MAGIC.len());
    let (module, rest) = rest.split_at(32);
    let (checksum, artifact) = rest.split_at(32);
    if magic != MAGIC {
        return Err("not a peergrid artifact file (bad magic)".into());
    }
    if module != hash {
        return Err("holds a different module".into());
    }
    if Sha256::digest(artifact).as_slice() != checksum {
        return Err("checksum mismatch (corrupt or torn write)".into());
    }
    Ok(())
}

/// Sets `path`'s modification time to now (the LRU clock); failures only
/// make eviction less accurate.
fn touch(path: &Path) {
    let touched = File::options()
        .write(true)
        .open(path)
        .and_then(|file| file.set_modified(SystemTime::now()));
    if let Err(e) = touched {
        tracing::debug!(path = %path.display(), error = %e, "cannot update an artifact's modification time");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn verify_checks_magic_module_and_checksum() {
        let hash = [7; 32];
        let artifact = b"machine code";
        let mut file = MAGIC.to_vec();
        file.extend_from_slice(&hash);
        file.extend_from_slice(&Sha256::digest(artifact));
        file.extend_from_slice(artifact);
        assert_eq!(verify(&file, &hash), Ok(()));
        assert!(verify(&file, &[8; 32]).is_err());
        assert!(verify(&file[..HEADER_BYTES - 1], &hash).is_err());
        assert!(verify(&file[..file.len() - 1], &hash).is_err());
        let mut flipped = file.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(verify(&flipped, &hash).is_err());
        let mut bad_magic = file;
        bad_magic[0] ^= 1;
        assert!(verify(&bad_magic, &hash).is_err());
    }

    #[test]
    fn fingerprints_follow_the_engine_config() {
        let a = Engine::new(&wasmtime::Config::new()).unwrap();
        let b = Engine::new(&wasmtime::Config::new()).unwrap();
        let mut fuel = wasmtime::Config::new();
        fuel.consume_fuel(true);
        let c = Engine::new(&fuel).unwrap();
        assert_eq!(fingerprint(&a), fingerprint(&b));
        assert_ne!(fingerprint(&a), fingerprint(&c));
        assert_eq!(fingerprint(&a).len(), 16);
    }
}
