//! End-to-end tests of `Sandbox` with real wasmtime and WAT modules: one
//! test (at least) per `ExecError` kind, determinism, and the compile cache.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Barrier, OnceLock};
use std::time::{Duration, Instant};

use peergrid_sandbox::{Config, ExecError, Execution, JobInput, Limits, Sandbox};

/// One sandbox shared by the tests, as on a node.
fn sandbox() -> &'static Sandbox {
    static SANDBOX: OnceLock<Sandbox> = OnceLock::new();
    SANDBOX.get_or_init(|| Sandbox::new(Config::default()).expect("sandbox"))
}

fn wasm(wat: &str) -> Vec<u8> {
    wat::parse_str(wat).expect("valid WAT")
}

fn run_with(wat: &str, input: &JobInput, limits: &Limits) -> Execution {
    let module = sandbox().compile(&wasm(wat)).expect("compiles");
    sandbox().run(&module, input, limits)
}

fn run(wat: &str) -> Execution {
    run_with(wat, &JobInput::default(), &Limits::default())
}

fn compile_error(wat_or_bytes: &[u8]) -> String {
    match sandbox().compile(wat_or_bytes) {
        Err(ExecError::InvalidModule(message)) => message,
        other => panic!("expected InvalidModule, got {other:?}"),
    }
}

const IMPORTS: &str = r#"
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $args_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get" (func $args_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (import "wasi_snapshot_preview1" "random_get" (func $random_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock_time_get (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll_oneoff (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  ;; write(fd, ptr, len), iovec at 0, nwritten at 8; returns errno
  (func $write (param $fd i32) (param $ptr i32) (param $len i32) (result i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8)))
"#;

/// A WASI command module: the common imports and helpers plus `body`.
fn command(body: &str) -> String {
    format!("(module {IMPORTS} {body})")
}

const LOOP_FOREVER: &str = r#"(module (func (export "_start") (loop $l (br $l))))"#;

// ---------------------------------------------------------------- success

#[test]
fn hello_echoes_args_and_stdin() {
    let wat = command(
        r#"
        (data (i32.const 2048) "note to stderr")
        (func (export "_start")
          (local $n i32)
          (drop (call $args_sizes_get (i32.const 16) (i32.const 20)))
          (drop (call $args_get (i32.const 64) (i32.const 1024)))
          (drop (call $write (i32.const 1) (i32.const 1024) (i32.load (i32.const 20))))
          (drop (call $write (i32.const 2) (i32.const 2048) (i32.const 14)))
          (block $done
            (loop $again
              (i32.store (i32.const 0) (i32.const 4096))
              (i32.store (i32.const 4) (i32.const 4096))
              (drop (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
              (local.set $n (i32.load (i32.const 8)))
              (br_if $done (i32.eqz (local.get $n)))
              (drop (call $write (i32.const 1) (i32.const 4096) (local.get $n)))
              (br $again))))
        "#,
    );
    let input = JobInput {
        args: vec!["a".into(), "bc".into()],
        stdin: b"hello, grid\n".to_vec(),
        ..JobInput::default()
    };
    let execution = run_with(&wat, &input, &Limits::default());
    assert_eq!(execution.result, Ok(()));
    assert_eq!(execution.stdout, b"job\0a\0bc\0hello, grid\n");
    assert_eq!(execution.stderr, b"note to stderr");
    assert!(execution.fuel_used > 0);
    // Fuel is deterministic too.
    assert_eq!(
        run_with(&wat, &input, &Limits::default()).fuel_used,
        execution.fuel_used
    );
}

#[test]
fn proc_exit_zero_is_success() {
    let execution = run(&command(
        r#"(func (export "_start") (call $proc_exit (i32.const 0)) (unreachable))"#,
    ));
    assert_eq!(execution.result, Ok(()));
}

// ------------------------------------------------------------ error kinds

#[test]
fn garbage_is_invalid_module() {
    let message = compile_error(b"definitely not wasm");
    assert_eq!(message, "not a WebAssembly binary (no \\0asm magic number)");
    // Cached: asking again gives the same answer.
    assert_eq!(compile_error(b"definitely not wasm"), message);
}

#[test]
fn truncated_module_is_invalid() {
    let bytes = wasm(LOOP_FOREVER);
    let message = compile_error(&bytes[..bytes.len() - 3]);
    assert!(
        message.starts_with("failed to parse WebAssembly module"),
        "{message}"
    );
}

#[test]
fn ungranted_import_is_named() {
    let message = compile_error(&wasm(
        r#"(module
             (import "env" "system" (func (param i32) (result i32)))
             (func (export "_start")))"#,
    ));
    assert_eq!(
        message,
        "imports env::system, which the sandbox does not provide"
    );
    let message = compile_error(&wasm(
        r#"(module
             (import "wasi_snapshot_preview1" "sock_open" (func))
             (func (export "_start")))"#,
    ));
    assert!(
        message.contains("wasi_snapshot_preview1::sock_open"),
        "{message}"
    );
}

#[test]
fn wrongly_typed_wasi_import_is_invalid() {
    let message = compile_error(&wasm(
        r#"(module
             (import "wasi_snapshot_preview1" "fd_write" (func (param i32)))
             (func (export "_start")))"#,
    ));
    assert!(message.contains("fd_write"), "{message}");
}

#[test]
fn missing_start_is_invalid() {
    assert_eq!(
        compile_error(&wasm("(module (memory (export \"memory\") 1))")),
        "module has no _start export (not a WASI command)"
    );
    let message = compile_error(&wasm(r#"(module (func (export "_start") (param i32)))"#));
    assert!(message.contains("_start"), "{message}");
}

#[test]
fn non_deterministic_and_oversized_features_are_rejected() {
    // Threads (shared memory) and relaxed SIMD are disabled.
    compile_error(&wasm(
        "(module (memory 1 1 shared) (func (export \"_start\")))",
    ));
    compile_error(&wasm(
        r#"(module (func (export "_start")
             (drop (f32x4.relaxed_madd (v128.const i64x2 0 0) (v128.const i64x2 0 0) (v128.const i64x2 0 0)))))"#,
    ));
    // One memory only.
    compile_error(&wasm(
        "(module (memory 1) (memory 1) (func (export \"_start\")))",
    ));
    // Too many tables (wasmparser's limit, which the limiter matches).
    let tables = "(table 0 funcref)".repeat(101);
    let message = compile_error(&wasm(&format!(
        "(module {tables} (func (export \"_start\")))"
    )));
    assert!(
        message.contains("tables count exceeds limit of 100"),
        "{message}"
    );
}

#[test]
fn oversized_module_is_invalid() {
    let mut config = Config::default();
    config.max_module_bytes = 16;
    let small = Sandbox::new(config).unwrap();
    let bytes = wasm(LOOP_FOREVER);
    match small.compile(&bytes) {
        Err(ExecError::InvalidModule(message)) => {
            assert!(
                message.contains("more than the limit of 16 bytes"),
                "{message}"
            )
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn infinite_loop_runs_out_of_fuel() {
    let limits = Limits {
        fuel: 1_000_000,
        ..Limits::default()
    };
    let started = Instant::now();
    let execution = run_with(LOOP_FOREVER, &JobInput::default(), &limits);
    assert_eq!(execution.result, Err(ExecError::OutOfFuel));
    assert_eq!(execution.fuel_used, 1_000_000);
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[test]
fn infinite_loop_times_out() {
    let limits = Limits {
        fuel: 1_000_000_000_000_000,
        wall_time: Duration::from_millis(200),
        ..Limits::default()
    };
    let started = Instant::now();
    let execution = run_with(LOOP_FOREVER, &JobInput::default(), &limits);
    let elapsed = started.elapsed();
    assert_eq!(execution.result, Err(ExecError::Timeout));
    assert!(!ExecError::Timeout.is_deterministic());
    assert!(elapsed >= Duration::from_millis(200), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
}

const MIB: u64 = 1024 * 1024;

fn small_memory() -> Limits {
    Limits {
        memory_bytes: 16 * MIB,
        ..Limits::default()
    }
}

#[test]
fn memory_grow_bomb_hits_memory_limit() {
    // Grows until refused, then aborts like an out-of-memory guest.
    let wat = r#"(module (memory (export "memory") 1)
        (func (export "_start")
          (loop $l (br_if $l (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
          (unreachable)))"#;
    let execution = run_with(wat, &JobInput::default(), &small_memory());
    assert_eq!(execution.result, Err(ExecError::MemoryLimit));
}

#[test]
fn huge_initial_memory_hits_memory_limit() {
    let wat = r#"(module (memory (export "memory") 1000) (func (export "_start")))"#;
    let execution = run_with(wat, &JobInput::default(), &small_memory());
    assert_eq!(execution.result, Err(ExecError::MemoryLimit));
    // Within the limit it is fine.
    let execution = run_with(wat, &JobInput::default(), &Limits::default());
    assert_eq!(execution.result, Ok(()));
}

#[test]
fn huge_table_hits_memory_limit() {
    let wat = r#"(module (table 200000 funcref) (func (export "_start")))"#;
    assert_eq!(run(wat).result, Err(ExecError::MemoryLimit));
}

#[test]
fn refused_growth_that_the_guest_survives_is_success() {
    let wat = r#"(module (memory (export "memory") 1)
        (func (export "_start")
          (if (i32.ne (memory.grow (i32.const 1000)) (i32.const -1)) (then (unreachable)))))"#;
    let execution = run_with(wat, &JobInput::default(), &small_memory());
    assert_eq!(execution.result, Ok(()));
}

#[test]
fn growth_beyond_the_modules_own_maximum_is_not_a_memory_limit() {
    let wat = r#"(module (memory (export "memory") 1 2)
        (func (export "_start")
          (if (i32.eq (memory.grow (i32.const 5)) (i32.const -1)) (then (unreachable)))))"#;
    assert_eq!(
        run(wat).result,
        Err(ExecError::Trap(
            "wasm `unreachable` instruction executed".into()
        ))
    );
}

#[test]
fn deep_recursion_exhausts_the_stack() {
    let wat = r#"(module (func $f (call $f)) (func (export "_start") (call $f)))"#;
    let execution = run(wat);
    match &execution.result {
        Err(ExecError::Trap(message)) => assert!(message.contains("stack"), "{message}"),
        other => panic!("{other:?}"),
    }
    // The message is the bare trap description, identical on every run.
    assert_eq!(run(wat).result, execution.result);
}

#[test]
fn traps_during_instantiation_are_traps() {
    let start = r#"(module (func $s (unreachable)) (start $s) (func (export "_start")))"#;
    assert_eq!(
        run(start).result,
        Err(ExecError::Trap(
            "wasm `unreachable` instruction executed".into()
        ))
    );
    let segment = r#"(module (memory 1) (data (i32.const 65535) "ab") (func (export "_start")))"#;
    assert_eq!(
        run(segment).result,
        Err(ExecError::Trap("out of bounds memory access".into()))
    );
}

#[test]
fn refused_host_calls_are_traps_without_backtraces() {
    // random_get into a buffer past the end of memory.
    let wat = command(
        r#"(func (export "_start") (drop (call $random_get (i32.const 65000) (i32.const 1000))))"#,
    );
    let execution = run(&wat);
    assert_eq!(
        execution.result,
        Err(ExecError::Trap(
            "Pointer out of bounds: Region { start: 65000, len: 1000 }".into()
        ))
    );
}

fn flood(fd: u32, iterations: u32) -> String {
    command(&format!(
        r#"(func (export "_start")
             (local $i i32)
             (loop $l
               (drop (call $write (i32.const {fd}) (i32.const 1024) (i32.const 1000)))
               (local.set $i (i32.add (local.get $i) (i32.const 1)))
               (br_if $l (i32.lt_u (local.get $i) (i32.const {iterations})))))"#
    ))
}

#[test]
fn stdout_flood_is_output_too_large() {
    let limits = Limits {
        max_output_bytes: 10_000,
        ..Limits::default()
    };
    let execution = run_with(&flood(1, u32::MAX), &JobInput::default(), &limits);
    assert_eq!(execution.result, Err(ExecError::OutputTooLarge));
    assert_eq!(execution.stdout.len(), 10_000);
    // Exactly the limit is fine.
    let execution = run_with(&flood(1, 10), &JobInput::default(), &limits);
    assert_eq!(execution.result, Ok(()));
    assert_eq!(execution.stdout.len(), 10_000);
}

#[test]
fn stderr_flood_is_silently_truncated() {
    let limits = Limits {
        max_stderr_bytes: 4096,
        ..Limits::default()
    };
    let execution = run_with(&flood(2, 100), &JobInput::default(), &limits);
    assert_eq!(execution.result, Ok(()));
    assert_eq!(execution.stderr.len(), 4096);
}

#[test]
fn proc_exit_nonzero_is_exit_code() {
    let execution = run(&command(
        r#"(func (export "_start") (call $proc_exit (i32.const 3)))"#,
    ));
    assert_eq!(execution.result, Err(ExecError::ExitCode(3)));
}

// ------------------------------------------------------------ determinism

/// Prints 32 random bytes, the wall clock and the monotonic clock.
const ENTROPY: &str = r#"
    (func (export "_start")
      (drop (call $random_get (i32.const 96) (i32.const 32)))
      (drop (call $clock_time_get (i32.const 0) (i64.const 1) (i32.const 128)))
      (drop (call $clock_time_get (i32.const 1) (i64.const 1) (i32.const 136)))
      (drop (call $write (i32.const 1) (i32.const 96) (i32.const 48))))
"#;

fn entropy(seed: u8) -> Vec<u8> {
    let input = JobInput {
        seed: [seed; 32],
        clock_base_unix_ns: 1_700_000_000_000_000_000,
        ..JobInput::default()
    };
    let execution = run_with(&command(ENTROPY), &input, &Limits::default());
    assert_eq!(execution.result, Ok(()));
    assert_eq!(execution.stdout.len(), 48);
    execution.stdout
}

#[test]
fn random_and_clocks_are_deterministic() {
    let first = entropy(1);
    assert_eq!(entropy(1), first);
    let other = entropy(2);
    assert_ne!(other[..32], first[..32]);
    // Clocks do not depend on the seed: wall clock = base at the first
    // read, monotonic = 1 µs after it (one read earlier).
    assert_eq!(other[32..], first[32..]);
    let wall = u64::from_le_bytes(first[32..40].try_into().unwrap());
    let monotonic = u64::from_le_bytes(first[40..48].try_into().unwrap());
    assert_eq!(wall, 1_700_000_000_000_000_000);
    assert_eq!(monotonic, 1_000);
}

#[test]
fn sleeping_is_virtual_and_instant() {
    // poll_oneoff on a one-hour relative monotonic clock, then read the clock.
    let wat = command(
        r#"(func (export "_start")
             (i64.store (i32.const 256) (i64.const 42))
             (i32.store8 (i32.const 264) (i32.const 0))
             (i32.store (i32.const 272) (i32.const 1))
             (i64.store (i32.const 280) (i64.const 3600000000000))
             (i32.store16 (i32.const 296) (i32.const 0))
             (i32.store (i32.const 20)
               (call $poll_oneoff (i32.const 256) (i32.const 512) (i32.const 1) (i32.const 16)))
             (drop (call $clock_time_get (i32.const 1) (i64.const 1) (i32.const 24)))
             (i64.store (i32.const 32) (i64.load (i32.const 512)))
             (drop (call $write (i32.const 1) (i32.const 16) (i32.const 24))))"#,
    );
    let started = Instant::now();
    let execution = run(&wat);
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(execution.result, Ok(()));
    let out = &execution.stdout;
    assert_eq!(out.len(), 24);
    let u32_at = |at: usize| u32::from_le_bytes(out[at..at + 4].try_into().unwrap());
    let u64_at = |at: usize| u64::from_le_bytes(out[at..at + 8].try_into().unwrap());
    assert_eq!(u32_at(0), 1, "one event");
    assert_eq!(u32_at(4), 0, "errno success");
    assert_eq!(
        u64_at(8),
        3_600_000_000_000,
        "monotonic clock after sleeping"
    );
    assert_eq!(u64_at(16), 42, "event userdata");
}

// ------------------------------------------------------------ compile cache

#[test]
fn concurrent_compiles_of_one_module_compile_once() {
    let sandbox = Arc::new(Sandbox::new(Config::default()).unwrap());
    let bytes = Arc::new(wasm(&command(ENTROPY)));
    let barrier = Arc::new(Barrier::new(4));
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let (sandbox, bytes, barrier) = (sandbox.clone(), bytes.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                sandbox.compile(&bytes).unwrap()
            })
        })
        .collect();
    let modules: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(modules.iter().all(|m| Arc::ptr_eq(m, &modules[0])));
    let stats = sandbox.stats();
    assert_eq!((stats.compiles, stats.misses, stats.hits), (1, 1, 3));
    assert_eq!(stats.entries, 1);

    let hash = modules[0].hash();
    assert_eq!(modules[0].size(), bytes.len());
    let cached = sandbox.cached(&hash).expect("cached");
    assert!(Arc::ptr_eq(&cached, &modules[0]));
    assert!(sandbox.cached(&[0; 32]).is_none());

    // Failures are cached as well.
    assert!(sandbox.compile(b"junk").is_err());
    assert!(sandbox.compile(b"junk").is_err());
    assert_eq!(sandbox.stats().compiles, 2);

    // Modules run concurrently from several threads.
    let handles: Vec<_> = (0..4u8)
        .map(|seed| {
            let (sandbox, module) = (sandbox.clone(), modules[0].clone());
            std::thread::spawn(move || {
                let input = JobInput {
                    seed: [seed % 2; 32],
                    ..JobInput::default()
                };
                sandbox.run(&module, &input, &Limits::default()).stdout
            })
        })
        .collect();
    let outputs: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(outputs[0], outputs[2]);
    assert_eq!(outputs[1], outputs[3]);
    assert_ne!(outputs[0], outputs[1]);
}

#[test]
fn modules_from_another_sandbox_are_refused() {
    let other = Sandbox::new(Config::default()).unwrap();
    let module = other.compile(&wasm(LOOP_FOREVER)).unwrap();
    let execution = sandbox().run(&module, &JobInput::default(), &Limits::default());
    assert_eq!(
        execution.result.as_ref().map_err(ExecError::kind),
        Err("host")
    );
}

#[test]
fn bad_config_is_rejected() {
    let mut config = Config::default();
    config.epoch_tick = Duration::ZERO;
    assert!(matches!(
        Sandbox::new(config),
        Err(peergrid_sandbox::SandboxError::InvalidConfig(_))
    ));
}

#[test]
fn non_deterministic_engine_still_runs_jobs() {
    let mut config = Config::default();
    config.deterministic = false;
    let sandbox = Sandbox::new(config).unwrap();
    let module = sandbox.compile(&wasm(&command(ENTROPY))).unwrap();
    let execution = sandbox.run(&module, &JobInput::default(), &Limits::default());
    assert_eq!(execution.result, Ok(()));
}
