//! The on-disk compiled-code cache (`Config::artifact_dir`): a second
//! sandbox on the same directory (a restarted node) loads modules without
//! compiling and runs them exactly as before; bad files are detected,
//! deleted and recompiled; an artifact of another engine configuration is
//! never loaded; eviction keeps the directory under its size bound.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use peergrid_jobs::ExampleJob;
use peergrid_sandbox::{CompilerCommand, Config, JobInput, Limits, Sandbox};

/// A sandbox caching compiled code in `dir`.
fn sandbox_in(dir: &Path) -> Sandbox {
    let mut config = Config::default();
    config.artifact_dir = Some(dir.to_path_buf());
    Sandbox::new(config).unwrap()
}

/// The sample input of an example job.
fn sample(job: &ExampleJob) -> JobInput {
    JobInput {
        args: job.sample_args.iter().map(|a| a.to_string()).collect(),
        stdin: job.sample_stdin.to_vec(),
        ..JobInput::default()
    }
}

/// Compiles and runs `job`'s sample in `sandbox`: (stdout, fuel used).
fn run_sample(sandbox: &Sandbox, job: &ExampleJob) -> (Vec<u8>, u64) {
    let module = sandbox.compile(job.wasm).unwrap();
    let execution = sandbox.run(&module, &sample(job), &Limits::default());
    assert_eq!(execution.result, Ok(()), "{}", job.name);
    assert_eq!(execution.stdout, job.sample_stdout, "{}", job.name);
    (execution.stdout, execution.fuel_used)
}

/// Every `.cwasm` file in `dir`, sorted.
fn artifact_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect();
    files.sort();
    files
}

/// Total size of the `.cwasm` files in `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    artifact_files(dir)
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum()
}

/// The file `sandbox` uses for `wasm`.
fn path_of(sandbox: &Sandbox, wasm: &[u8]) -> PathBuf {
    let hash = sandbox.compile(wasm).unwrap().hash();
    sandbox.artifact_path(&hash).unwrap()
}

/// Compile in one sandbox, "restart" (a fresh sandbox on the same
/// directory), and the module is loaded from disk, not compiled, and runs
/// with the same output and fuel.
fn survives_a_restart(config: impl Fn(&Path) -> Config) {
    let dir = tempfile::tempdir().unwrap();
    let job = &peergrid_jobs::MANDELBROT;
    let first = Sandbox::new(config(dir.path())).unwrap();
    let started = Instant::now();
    let before = run_sample(&first, job);
    let cold = started.elapsed();
    let stats = first.stats();
    assert_eq!(
        (stats.compiles, stats.disk_hits, stats.disk_writes),
        (1, 0, 1)
    );

    let hash = first.compile(job.wasm).unwrap().hash();
    let expected = format!("{}-{}.cwasm", hex::encode(hash), first.engine_fingerprint());
    assert_eq!(first.engine_fingerprint().len(), 16);
    assert_eq!(
        artifact_files(dir.path()),
        [dir.path().join(&expected)],
        "one file, named by module hash and engine fingerprint"
    );
    drop(first);

    let second = Sandbox::new(config(dir.path())).unwrap();
    let started = Instant::now();
    let after = run_sample(&second, job);
    let restarted = started.elapsed();
    let stats = second.stats();
    assert_eq!(
        (
            stats.misses,
            stats.compiles,
            stats.disk_hits,
            stats.disk_writes
        ),
        (1, 0, 1, 0),
        "loaded from disk without compiling: {stats:?}"
    );
    assert_eq!(before, after, "same output and fuel");
    eprintln!("{}: cold {cold:?}, after restart {restarted:?}", job.name);
    // Memory first from now on.
    second.compile(job.wasm).unwrap();
    assert_eq!(second.stats().hits, 1);
}

#[test]
fn a_restarted_sandbox_loads_from_disk_without_compiling() {
    survives_a_restart(|dir| {
        let mut config = Config::default();
        config.artifact_dir = Some(dir.to_path_buf());
        config
    });
}

#[test]
fn artifacts_of_the_compiler_child_are_stored_and_loaded_too() {
    survives_a_restart(|dir| {
        let mut config = Config::default();
        config.artifact_dir = Some(dir.to_path_buf());
        config.compiler = Some(CompilerCommand::new(env!("CARGO_BIN_EXE_peergrid-compile")));
        config
    });
}

#[test]
fn a_missing_directory_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("data").join("compiled");
    let sandbox = sandbox_in(&nested);
    run_sample(&sandbox, &peergrid_jobs::HASHCHAIN);
    assert_eq!(artifact_files(&nested).len(), 1);
}

/// `damage` the stored file of HASHCHAIN; a fresh sandbox must detect it,
/// delete it, compile afresh, run correctly and store a sound file that a
/// third sandbox then loads.
fn bad_file_is_replaced(damage: impl Fn(&Path)) {
    let dir = tempfile::tempdir().unwrap();
    let job = &peergrid_jobs::HASHCHAIN;
    let first = sandbox_in(dir.path());
    let (stdout, fuel) = run_sample(&first, job);
    let path = path_of(&first, job.wasm);
    drop(first);
    damage(&path);

    let second = sandbox_in(dir.path());
    assert_eq!(run_sample(&second, job), (stdout.clone(), fuel));
    let stats = second.stats();
    assert_eq!(
        (
            stats.disk_discarded,
            stats.disk_hits,
            stats.compiles,
            stats.disk_writes
        ),
        (1, 0, 1, 1),
        "{stats:?}"
    );

    let third = sandbox_in(dir.path());
    assert_eq!(run_sample(&third, job), (stdout, fuel));
    let stats = third.stats();
    assert_eq!((stats.disk_hits, stats.compiles), (1, 0), "{stats:?}");
}

#[test]
fn a_corrupted_file_is_detected_removed_and_recompiled() {
    bad_file_is_replaced(|path| {
        let mut bytes = std::fs::read(path).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x40;
        std::fs::write(path, bytes).unwrap();
    });
}

#[test]
fn a_truncated_file_is_detected_removed_and_recompiled() {
    bad_file_is_replaced(|path| {
        let bytes = std::fs::read(path).unwrap();
        std::fs::write(path, &bytes[..bytes.len() - 100]).unwrap();
    });
    bad_file_is_replaced(|path| std::fs::write(path, b"").unwrap());
}

#[test]
fn a_file_with_a_valid_checksum_that_wasmtime_refuses_is_removed() {
    // A well-formed peergrid header over bytes that are not a wasmtime
    // artifact: the checksum passes, wasmtime's own check must not.
    bad_file_is_replaced(|path| {
        use sha2::{Digest, Sha256};
        let bytes = std::fs::read(path).unwrap();
        let header = b"peergrid-cwasm/1\n".len() + 32;
        let garbage = vec![0x5a; 4096];
        let mut forged = bytes[..header].to_vec();
        forged.extend_from_slice(&Sha256::digest(&garbage));
        forged.extend_from_slice(&garbage);
        std::fs::write(path, forged).unwrap();
    });
}

#[test]
fn an_artifact_of_another_engine_config_is_never_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let job = &peergrid_jobs::MANDELBROT;
    let deterministic = sandbox_in(dir.path());
    let (stdout, _) = run_sample(&deterministic, job);

    let mut config = Config::default();
    config.artifact_dir = Some(dir.path().to_path_buf());
    config.deterministic = false;
    let fast = Sandbox::new(config).unwrap();
    assert_ne!(
        fast.engine_fingerprint(),
        deterministic.engine_fingerprint()
    );
    let (fast_stdout, _) = run_sample(&fast, job);
    assert_eq!(fast_stdout, stdout);
    let stats = fast.stats();
    assert_eq!(
        (
            stats.disk_hits,
            stats.compiles,
            stats.disk_writes,
            stats.disk_discarded
        ),
        (0, 1, 1, 0),
        "compiled, not loaded: {stats:?}"
    );
    // One file per engine, side by side; each sandbox finds its own.
    let files = artifact_files(dir.path());
    assert_eq!(files.len(), 2, "{files:?}");
    assert_ne!(path_of(&fast, job.wasm), path_of(&deterministic, job.wasm));
    let again = sandbox_in(dir.path());
    run_sample(&again, job);
    assert_eq!((again.stats().disk_hits, again.stats().compiles), (1, 0));
}

/// A distinct small module per `n` (all of about the same compiled size).
fn numbered(n: u32) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(module (memory (export "memory") 1)
             (func (export "_start") (i32.store (i32.const 0) (i32.const {n}))))"#
    ))
    .unwrap()
}

#[test]
fn eviction_keeps_the_directory_under_its_bound_least_recently_used_first() {
    // Learn the size of one artifact file.
    let probe = tempfile::tempdir().unwrap();
    sandbox_in(probe.path()).compile(&numbered(0)).unwrap();
    let one = dir_bytes(probe.path());
    assert!(one > 0);

    let dir = tempfile::tempdir().unwrap();
    let max = 3 * one + one / 2; // room for three files
    let mut config = Config::default();
    config.artifact_dir = Some(dir.path().to_path_buf());
    config.artifact_dir_max_bytes = max;
    let sandbox = |config: &Config| Sandbox::new(config.clone()).unwrap();

    let writer = sandbox(&config);
    let paths: Vec<_> = (0..3).map(|n| path_of(&writer, &numbered(n))).collect();
    let pause = || std::thread::sleep(Duration::from_millis(50));
    // mtimes 0 < 1 < 2, then loading 0 from disk (a fresh sandbox) makes
    // it the most recently used: 1 is now the oldest.
    for path in &paths {
        filetime_bump(path);
        pause();
    }
    assert_eq!(artifact_files(dir.path()).len(), 3);
    let reader = sandbox(&config);
    reader.compile(&numbered(0)).unwrap();
    assert_eq!(reader.stats().disk_hits, 1);
    pause();

    // A fourth module: one file must go, the least recently used (1).
    let path3 = path_of(&writer, &numbered(3));
    assert!(dir_bytes(dir.path()) <= max);
    assert!(paths[0].exists(), "recently loaded, kept");
    assert!(!paths[1].exists(), "least recently used, evicted");
    assert!(paths[2].exists() && path3.exists());

    // Many more: always under the bound.
    for n in 4..12 {
        writer.compile(&numbered(n)).unwrap();
        assert!(dir_bytes(dir.path()) <= max, "after module {n}");
    }
    assert_eq!(artifact_files(dir.path()).len(), 3);
    assert_eq!(writer.stats().disk_writes, 12);

    // A bound smaller than one artifact: nothing is stored, nothing breaks.
    let tiny_dir = tempfile::tempdir().unwrap();
    let mut tiny = Config::default();
    tiny.artifact_dir = Some(tiny_dir.path().to_path_buf());
    tiny.artifact_dir_max_bytes = one / 2;
    let tiny = sandbox(&tiny);
    tiny.compile(&numbered(0)).unwrap();
    assert_eq!(tiny.stats().disk_writes, 0);
    assert!(artifact_files(tiny_dir.path()).is_empty());
}

/// Sets `path`'s modification time to now (as a load would).
fn filetime_bump(path: &Path) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(std::time::SystemTime::now())
        .unwrap();
}

#[test]
fn compile_failures_are_not_stored() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = sandbox_in(dir.path());
    assert!(sandbox.compile(b"\0asm\x01\0\0\0garbage").is_err());
    let no_start = wat::parse_str("(module)").unwrap();
    assert!(sandbox.compile(&no_start).is_err());
    assert_eq!(sandbox.stats().disk_writes, 0);
    assert!(artifact_files(dir.path()).is_empty());
}
