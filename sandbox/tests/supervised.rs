//! `Metering::Supervised`: uninstrumented code in runner processes killed
//! at the wall deadline. Every verdict other than fuel is the one the
//! fuel-metered sandbox gives (hostile modules, WASI determinism, NaN
//! bits, the example jobs); an endless loop is a timeout and its runner is
//! killed; runners are reused, and one that died while idle costs the next
//! job nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use peergrid_sandbox::{
    CompilerCommand, Config, ExecError, Execution, JobInput, Limits, Metering, Sandbox,
    SandboxError,
};

const MIB: u64 = 1024 * 1024;

fn compiler() -> CompilerCommand {
    CompilerCommand::new(env!("CARGO_BIN_EXE_peergrid-compile"))
}

fn supervised() -> Sandbox {
    let mut config = Config::default();
    config.metering = Metering::Supervised;
    config.compiler = Some(compiler());
    Sandbox::new(config).expect("supervised sandbox")
}

fn metered() -> Sandbox {
    let mut config = Config::default();
    config.compiler = Some(compiler());
    Sandbox::new(config).expect("fuel sandbox")
}

fn wasm(wat: &str) -> Vec<u8> {
    wat::parse_str(wat).expect("valid WAT")
}

fn run(sandbox: &Sandbox, wasm: &[u8], input: &JobInput, limits: &Limits) -> Execution {
    let module = sandbox.compile(wasm).expect("compiles");
    sandbox.run(&module, input, limits)
}

/// What replicas compare: outcome, stdout, stderr.
fn verdict(e: &Execution) -> (Result<(), ExecError>, Vec<u8>, Vec<u8>) {
    (e.result.clone(), e.stdout.clone(), e.stderr.clone())
}

/// Prints 48 bytes: 32 of `random_get`, the realtime and monotonic clocks.
const ENTROPY: &str = r#"(module
  (import "wasi_snapshot_preview1" "random_get" (func $random (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (drop (call $random (i32.const 64) (i32.const 32)))
    (drop (call $clock (i32.const 0) (i64.const 1) (i32.const 96)))
    (drop (call $clock (i32.const 1) (i64.const 1) (i32.const 104)))
    (i32.store (i32.const 0) (i32.const 64))
    (i32.store (i32.const 4) (i32.const 48))
    (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#;

/// Writes the bits of `0.0 / 0.0` (f32 and f64) and of a NaN with a
/// payload run through arithmetic: where NaN canonicalization matters.
const NAN_BITS: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (f32.store (i32.const 64) (f32.div (f32.const 0) (f32.const 0)))
    (f64.store (i32.const 68) (f64.div (f64.const 0) (f64.const 0)))
    (f64.store (i32.const 76) (f64.add (f64.const nan:0x4000000000123) (f64.const 1)))
    (f32.store (i32.const 84) (f32.sqrt (f32.const -1)))
    (i32.store (i32.const 0) (i32.const 64))
    (i32.store (i32.const 4) (i32.const 24))
    (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#;

#[test]
fn verdicts_are_those_of_the_fuel_sandbox() {
    let supervised = supervised();
    let metered = metered();
    let small = Limits {
        memory_bytes: 16 * MIB,
        max_output_bytes: 1000,
        ..Limits::default()
    };
    let input = JobInput {
        args: vec!["x".into()],
        stdin: b"some stdin".to_vec(),
        seed: [3; 32],
        clock_base_unix_ns: 1_700_000_000_000_000_000,
    };
    let cases: Vec<(&str, Vec<u8>, Result<(), ExecError>)> = vec![
        (
            "trivial",
            wasm(r#"(module (memory 1) (func (export "_start")))"#),
            Ok(()),
        ),
        (
            "memory grow bomb",
            wasm(
                r#"(module (memory 1)
                 (func (export "_start")
                   (loop $l (br_if $l (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
                   (unreachable)))"#,
            ),
            Err(ExecError::MemoryLimit),
        ),
        (
            "huge initial memory",
            wasm(r#"(module (memory 1000) (func (export "_start")))"#),
            Err(ExecError::MemoryLimit),
        ),
        (
            "deep recursion",
            wasm(r#"(module (func $f (export "_start") (call $f)))"#),
            Err(ExecError::Trap("call stack exhausted".into())),
        ),
        (
            "proc_exit(7)",
            wasm(
                r#"(module
                  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
                  (memory (export "memory") 1)
                  (func (export "_start") (call $exit (i32.const 7))))"#,
            ),
            Err(ExecError::ExitCode(7)),
        ),
        (
            "stdout flood",
            wasm(
                r#"(module
                  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
                  (memory (export "memory") 1)
                  (func (export "_start")
                    (i32.store (i32.const 0) (i32.const 64))
                    (i32.store (i32.const 4) (i32.const 600))
                    (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
                    (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#,
            ),
            Err(ExecError::OutputTooLarge),
        ),
        ("entropy and clocks", wasm(ENTROPY), Ok(())),
        ("NaN bits", wasm(NAN_BITS), Ok(())),
    ];
    for (name, module, expected) in cases {
        let a = run(&supervised, &module, &input, &small);
        let b = run(&metered, &module, &input, &small);
        assert_eq!(a.result, expected, "{name}: {:?}", a.stderr);
        assert_eq!(verdict(&a), verdict(&b), "{name}");
        assert_eq!(a.fuel_used, 0, "{name}: no fuel is counted");
    }
}

#[test]
fn nans_are_canonical_in_supervised_runs() {
    let execution = run(
        &supervised(),
        &wasm(NAN_BITS),
        &JobInput::default(),
        &Limits::default(),
    );
    assert_eq!(execution.result, Ok(()));
    let out = &execution.stdout;
    assert_eq!(
        u32::from_le_bytes(out[0..4].try_into().unwrap()),
        0x7fc0_0000
    );
    assert_eq!(
        u64::from_le_bytes(out[4..12].try_into().unwrap()),
        0x7ff8_0000_0000_0000
    );
    assert_eq!(
        u64::from_le_bytes(out[12..20].try_into().unwrap()),
        0x7ff8_0000_0000_0000
    );
    assert_eq!(
        u32::from_le_bytes(out[20..24].try_into().unwrap()),
        0x7fc0_0000
    );
}

#[test]
fn the_example_jobs_give_their_sample_output() {
    let sandbox = supervised();
    for job in peergrid_jobs::all() {
        let input = JobInput {
            args: job.sample_args.iter().map(|a| (*a).to_owned()).collect(),
            stdin: job.sample_stdin.to_vec(),
            ..JobInput::default()
        };
        let execution = run(&sandbox, job.wasm, &input, &Limits::default());
        assert_eq!(execution.result, Ok(()), "{}", job.name);
        assert_eq!(execution.stdout, job.sample_stdout, "{}", job.name);
        assert!(execution.cpu_time > Duration::ZERO, "{}", job.name);
    }
}

#[test]
fn an_endless_loop_is_killed_at_the_deadline_and_the_next_job_runs() {
    let sandbox = supervised();
    let endless = wasm(r#"(module (func (export "_start") (loop $l (br $l))))"#);
    let limits = Limits {
        wall_time: Duration::from_millis(300),
        ..Limits::default()
    };
    let started = Instant::now();
    let execution = run(&sandbox, &endless, &JobInput::default(), &limits);
    let took = started.elapsed();
    assert_eq!(execution.result, Err(ExecError::Timeout));
    assert!(took >= Duration::from_millis(300), "{took:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert!(sandbox.runner_pids().is_empty(), "the runner was killed");

    let trivial = wasm(r#"(module (memory 1) (func (export "_start")))"#);
    let execution = run(&sandbox, &trivial, &JobInput::default(), &limits);
    assert_eq!(execution.result, Ok(()));
    assert_eq!(sandbox.runner_pids().len(), 1);
}

#[test]
fn runners_are_reused_and_a_dead_idle_runner_costs_nothing() {
    let sandbox = supervised();
    let trivial = wasm(r#"(module (memory 1) (func (export "_start")))"#);
    let limits = Limits::default();
    assert_eq!(
        run(&sandbox, &trivial, &JobInput::default(), &limits).result,
        Ok(())
    );
    let pids = sandbox.runner_pids();
    assert_eq!(pids.len(), 1);
    assert_eq!(
        run(&sandbox, &trivial, &JobInput::default(), &limits).result,
        Ok(())
    );
    assert_eq!(sandbox.runner_pids(), pids, "the same runner ran both");

    let status = std::process::Command::new("kill")
        .args(["-9", &pids[0].to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    std::thread::sleep(Duration::from_millis(50));
    let execution = run(&sandbox, &trivial, &JobInput::default(), &limits);
    assert_eq!(execution.result, Ok(()), "{:?}", execution.result);
    let fresh = sandbox.runner_pids();
    assert_eq!(fresh.len(), 1);
    assert_ne!(fresh, pids, "a fresh runner took over");
}

#[test]
fn supervised_metering_needs_the_child_program() {
    let mut config = Config::default();
    config.metering = Metering::Supervised;
    match Sandbox::new(config) {
        Err(SandboxError::InvalidConfig(message)) => {
            assert!(message.contains("Config::compiler"), "{message}");
        }
        other => panic!("expected InvalidConfig, got {other:?}"),
    }
}

#[test]
fn native_nans_are_the_same_in_and_out_of_the_runner() {
    // Without canonicalization NaN bits are the CPU's: the same under
    // either metering (same wasmtime, same architecture, as homogeneous
    // redundancy places replicas), and named by the platform.
    let sandbox = |metering| {
        let mut config = Config::default();
        config.metering = metering;
        config.compiler = Some(compiler());
        config.canonicalize_nans = false;
        Sandbox::new(config).expect("sandbox")
    };
    let (supervised, metered) = (sandbox(Metering::Supervised), sandbox(Metering::Fuel));
    assert_eq!(supervised.platform(), metered.platform());
    assert!(supervised.platform().contains("/nan-native/"));
    let module = wasm(NAN_BITS);
    let a = run(
        &supervised,
        &module,
        &JobInput::default(),
        &Limits::default(),
    );
    let b = run(&metered, &module, &JobInput::default(), &Limits::default());
    assert_eq!(a.result, Ok(()));
    assert_eq!(a.stdout, b.stdout);
    #[cfg(target_arch = "x86_64")]
    assert_eq!(
        u32::from_le_bytes(a.stdout[0..4].try_into().unwrap()),
        0xffc0_0000,
        "x86's default NaN for 0/0"
    );
}

#[test]
fn idle_runners_are_stopped_after_their_idle_time() {
    let mut config = Config::default();
    config.metering = Metering::Supervised;
    config.compiler = Some(compiler());
    config.runner_idle_time = Duration::from_millis(200);
    let sandbox = Sandbox::new(config).expect("sandbox");
    let trivial = wasm(r#"(module (memory 1) (func (export "_start")))"#);
    let limits = Limits::default();
    assert_eq!(
        run(&sandbox, &trivial, &JobInput::default(), &limits).result,
        Ok(())
    );
    let pid = sandbox.runner_pids()[0];
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sandbox.runner_pids().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the idle runner was never stopped"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Reaped (killed and waited for), not left as a zombie.
    #[cfg(target_os = "linux")]
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    let _ = pid;
    // The next job starts a fresh runner.
    assert_eq!(
        run(&sandbox, &trivial, &JobInput::default(), &limits).result,
        Ok(())
    );
    assert_eq!(sandbox.runner_pids().len(), 1);
}
