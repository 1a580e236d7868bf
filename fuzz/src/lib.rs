//! Helpers shared by the fuzz targets in `fuzz_targets/` (see README.md).

use std::sync::OnceLock;

use peergrid_proto::{Domain, Identity};

/// Every signing domain, so a target can try an envelope against each.
pub const DOMAINS: [Domain; 4] = [Domain::Job, Domain::Result, Domain::Advert, Domain::Hello];

/// Fixed, deterministic identities: `Identity::from_secret([n + 1; 32])`
/// for `n` in `0..16`. Keys are derived once per process (deriving costs a
/// scalar multiplication); seeds made by `seeds.py` use the same secrets.
pub fn identities() -> &'static [Identity; 16] {
    static IDS: OnceLock<[Identity; 16]> = OnceLock::new();
    IDS.get_or_init(|| std::array::from_fn(|n| Identity::from_secret([n as u8 + 1; 32])))
}

/// The identity a target signs fuzzer-chosen payloads with.
pub fn signer() -> &'static Identity {
    &identities()[0]
}

/// Splits off the mode byte of a two-mode target: `Some((true, rest))` when
/// `rest` is to be signed with [`signer`] ("signed mode", byte 1), `Some((false,
/// rest))` when `rest` is raw wire bytes (any other first byte).
pub fn mode(data: &[u8]) -> Option<(bool, &[u8])> {
    let (&first, rest) = data.split_first()?;
    Some((first == 1, rest))
}

/// Whether `PEERGRID_FUZZ_VERBOSE` is set: the sandbox targets then print
/// what each input compiled and ran to (to check seeds, or read a crash).
pub fn verbose() -> bool {
    static VERBOSE: OnceLock<bool> = OnceLock::new();
    *VERBOSE.get_or_init(|| std::env::var_os("PEERGRID_FUZZ_VERBOSE").is_some())
}

/// The sandbox a target compiles and runs modules in: one per process (an
/// engine, a linker and an epoch ticker thread are costly to build), with
/// the default [`peergrid_sandbox::Config`], so modules are compiled in
/// process (`Config::compiler` unset).
pub fn sandbox() -> &'static peergrid_sandbox::Sandbox {
    static SANDBOX: OnceLock<peergrid_sandbox::Sandbox> = OnceLock::new();
    SANDBOX.get_or_init(|| {
        peergrid_sandbox::Sandbox::new(peergrid_sandbox::Config::default())
            .expect("default sandbox config")
    })
}

/// Tight limits: a fuzz run must end within milliseconds.
pub fn tight_limits() -> peergrid_sandbox::Limits {
    peergrid_sandbox::Limits {
        fuel: 200_000,
        memory_bytes: 4 << 20,
        wall_time: std::time::Duration::from_millis(200),
        max_output_bytes: 4096,
        max_stderr_bytes: 1024,
    }
}

/// Runs `module` twice under [`tight_limits`] (never panics, or the target
/// fails) and checks that both runs saw the same thing: jobs are replicated
/// and compared byte for byte, so every outcome other than a wall-clock
/// `Timeout` or a `Host` failure must be a function of the module, the
/// input and the limits.
pub fn run_twice(module: &peergrid_sandbox::CompiledModule, input: &peergrid_sandbox::JobInput) {
    use peergrid_sandbox::ExecError;
    let limits = tight_limits();
    let a = sandbox().run(module, input, &limits);
    let b = sandbox().run(module, input, &limits);
    if verbose() {
        eprintln!(
            "run: {:?}, fuel {}, stdout {:?}",
            a.result,
            a.fuel_used,
            String::from_utf8_lossy(&a.stdout)
        );
    }
    let nondeterministic =
        |r: &Result<(), ExecError>| matches!(r, Err(ExecError::Timeout | ExecError::Host(_)));
    if nondeterministic(&a.result) || nondeterministic(&b.result) {
        return;
    }
    assert_eq!(a.result, b.result);
    assert_eq!(a.stdout, b.stdout);
    assert_eq!(a.stderr, b.stderr);
    assert_eq!(a.fuel_used, b.fuel_used);
    assert!(a.fuel_used <= limits.fuel);
    assert!(a.stdout.len() <= limits.max_output_bytes);
    assert!(a.stderr.len() <= limits.max_stderr_bytes);
}
