//! `peergrid keygen`: create (or show) this machine's node identity.

use std::path::Path;
use std::process::ExitCode;

use peergrid_proto::Identity;

/// Creates the identity in `dir` if absent and prints the peer id.
pub fn run(dir: &Path) -> anyhow::Result<ExitCode> {
    let (identity, created) = Identity::load_or_create(dir)?;
    let key = dir.join(peergrid_proto::identity::KEY_FILE);
    if created {
        eprintln!("created a new identity in {}", key.display());
    } else {
        eprintln!("identity already exists in {}", key.display());
    }
    println!("{}", identity.peer_id());
    Ok(ExitCode::SUCCESS)
}
