//! `peergrid keygen`: create (or show) this machine's node identity.

use std::path::Path;
use std::process::ExitCode;

/// Creates the identity in `dir` if absent (grinding the network's puzzle at
/// `bits`, with progress) and prints the peer id.
pub fn run(dir: &Path, bits: u32) -> anyhow::Result<ExitCode> {
    let (identity, created) = super::identity::load_or_grind(dir, bits, true)?;
    let solved = peergrid_proto::puzzle::difficulty(&identity.public_key());
    if solved < bits {
        eprintln!(
            "warning: this identity solves only {solved} bits of the puzzle; nodes of a {bits}-bit network will refuse it"
        );
    }
    let key = dir.join(peergrid_proto::identity::KEY_FILE);
    if created {
        eprintln!("created a new identity in {}", key.display());
    } else {
        eprintln!("identity already exists in {}", key.display());
    }
    println!("{}", identity.peer_id());
    Ok(ExitCode::SUCCESS)
}
