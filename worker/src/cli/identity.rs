//! The identity of this machine: loaded from the data directory, or ground
//! (the network's proof-of-work puzzle) and saved there on first use.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use peergrid_proto::{Identity, puzzle};

/// Loads the identity in `dir`, or grinds one that solves the puzzle at
/// `bits` and saves it (mode 0600), showing progress on stderr when asked
/// (a running count on a terminal, one line when it is found).
/// Returns the identity and whether it was created now.
pub fn load_or_grind(
    dir: &Path,
    bits: u32,
    show_progress: bool,
) -> anyhow::Result<(Identity, bool)> {
    let key = dir.join(peergrid_proto::identity::KEY_FILE);
    if key.exists() {
        let (identity, _) = Identity::load_or_create(dir)?;
        return Ok((identity, false));
    }
    let started = Instant::now();
    let expected = 1u64 << bits.min(63);
    // The running count rewrites one line: only on a terminal. A log file
    // or a pipe gets the final line alone.
    let live = show_progress && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let identity = puzzle::grind(bits, |attempts| {
        if live {
            let rate = attempts as f64 / started.elapsed().as_secs_f64().max(1e-3);
            eprint!(
                "\rgrinding an identity with {bits} leading zero bits: {attempts} keys tried (~{expected} expected), {rate:.0}/s   "
            );
            let _ = std::io::stderr().flush();
        }
    });
    if live {
        eprint!("\r{:110}\r", "");
    }
    if show_progress {
        eprintln!(
            "found an identity solving the {bits}-bit puzzle in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    identity
        .save(dir)
        .with_context(|| format!("saving the new identity in {}", dir.display()))?;
    Ok((identity, true))
}
