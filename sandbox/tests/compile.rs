//! Compiling untrusted modules: pre-checks, and compile bombs killed in the
//! compiler child process (this crate's `peergrid-compile` binary) within
//! their budget, after which the same sandbox still compiles and runs
//! normal modules; and the example jobs compiled in the child run exactly
//! as when compiled in-process.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bombs;

use std::time::{Duration, Instant};

use peergrid_sandbox::{CompilerCommand, Config, ExecError, JobInput, Limits, Sandbox};

/// The compiler child, as a node configures it.
fn compiler() -> CompilerCommand {
    CompilerCommand::new(env!("CARGO_BIN_EXE_peergrid-compile"))
}

/// A sandbox compiling in the child under a small budget, so bombs die fast:
/// 1 s + 1 s/MiB and 1 GiB (a ~1 MiB bomb gets about 2 s).
fn bomb_sandbox() -> Sandbox {
    let mut config = Config::default();
    config.compiler = Some(compiler());
    config.compile_budget.base = Duration::from_secs(1);
    config.compile_budget.per_mib = Duration::from_secs(1);
    config.compile_budget.memory_bytes = 1 << 30;
    Sandbox::new(config).unwrap()
}

/// A sandbox whose compiler cannot even start: any module reaching the
/// compile step gets [`ExecError::Host`], so a different error proves the
/// module was rejected before it.
fn no_compiler_sandbox() -> Sandbox {
    let mut config = Config::default();
    config.compiler = Some(CompilerCommand::new("/nonexistent/peergrid-compile"));
    config.max_function_locals = 1_000;
    config.max_function_body_bytes = 64 << 10;
    Sandbox::new(config).unwrap()
}

const HELLO: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hello\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 6))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#;

/// A normal module compiles in `sandbox` and runs.
fn still_works(sandbox: &Sandbox) {
    let module = sandbox.compile(&wat::parse_str(HELLO).unwrap()).unwrap();
    let execution = sandbox.run(&module, &JobInput::default(), &Limits::default());
    assert_eq!(execution.result, Ok(()));
    assert_eq!(execution.stdout, b"hello\n");
}

/// `wasm` is rejected with `CompileBudget` within its time budget (plus
/// slack for process start-up on a busy machine), the failure is cached,
/// and the sandbox then compiles and runs a normal module.
fn rejected_within_budget(sandbox: &Sandbox, wasm: &[u8]) -> Duration {
    let budget = sandbox.config().compile_budget.time_for(wasm.len());
    let started = Instant::now();
    let result = sandbox.compile(wasm);
    let elapsed = started.elapsed();
    match &result {
        Err(ExecError::CompileBudget(message)) => assert!(
            message.contains("did not finish within") && message.contains("1024 MiB"),
            "{message}"
        ),
        other => panic!("expected CompileBudget, got {other:?}"),
    }
    assert!(
        elapsed < budget + Duration::from_secs(2),
        "took {elapsed:?} for a budget of {budget:?}"
    );
    // Cached: the same bomb is never compiled twice.
    let compiles = sandbox.stats().compiles;
    let again = Instant::now();
    assert_eq!(sandbox.compile(wasm).err(), result.err());
    assert!(again.elapsed() < Duration::from_millis(500));
    assert_eq!(sandbox.stats().compiles, compiles);
    still_works(sandbox);
    eprintln!(
        "{} bytes rejected after {elapsed:?} (budget {budget:?})",
        wasm.len()
    );
    elapsed
}

#[test]
fn a_long_i64_chain_is_rejected_within_budget() {
    rejected_within_budget(&bomb_sandbox(), &bombs::i64_chain(1 << 20));
}

#[test]
fn thousands_of_locals_live_across_ifs_are_rejected_within_budget() {
    rejected_within_budget(&bomb_sandbox(), &bombs::locals_across_ifs(1 << 20));
}

#[test]
fn deep_br_table_nests_are_rejected_within_budget() {
    rejected_within_budget(&bomb_sandbox(), &bombs::br_table_nests(1 << 20));
}

#[test]
fn a_deep_loop_nest_is_rejected_within_budget() {
    let wasm = bombs::deep_loops(3_000);
    assert!(wasm.len() < 32 << 10, "a small module: {}", wasm.len());
    rejected_within_budget(&bomb_sandbox(), &wasm);
}

#[test]
fn the_memory_budget_stops_a_compile_long_before_the_time_budget() {
    let mut config = Config::default();
    config.compiler = Some(compiler());
    config.compile_budget.base = Duration::from_secs(120);
    config.compile_budget.memory_bytes = 128 << 20;
    let sandbox = Sandbox::new(config).unwrap();
    let started = Instant::now();
    let result = sandbox.compile(&bombs::i64_chain(1 << 20));
    assert!(
        matches!(&result, Err(ExecError::CompileBudget(m)) if m.contains("128 MiB")),
        "{result:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    still_works(&sandbox);
}

#[test]
fn a_one_byte_module_is_invalid_without_compiling() {
    let sandbox = no_compiler_sandbox();
    assert!(matches!(
        sandbox.compile(b"\0"),
        Err(ExecError::InvalidModule(_))
    ));
    assert!(matches!(
        sandbox.compile(b"#!/bin/sh\necho not wasm\n"),
        Err(ExecError::InvalidModule(_))
    ));
    // A truncated module fails the pre-check's parse.
    let wasm = wat::parse_str(HELLO).unwrap();
    match sandbox.compile(&wasm[..wasm.len() - 5]) {
        Err(ExecError::InvalidModule(m)) => {
            assert!(m.starts_with("failed to parse WebAssembly module"), "{m}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn over_limit_locals_and_bodies_are_rejected_by_the_pre_check() {
    let sandbox = no_compiler_sandbox();
    let locals = wat::parse_str(format!(
        r#"(module (func (local {})) (func (export "_start")))"#,
        "i64 ".repeat(1_001)
    ))
    .unwrap();
    assert_eq!(
        sandbox.compile(&locals).err(),
        Some(ExecError::CompileBudget(
            "defined function 0 declares more than 1000 locals, the limit per function".into()
        ))
    );
    let body = wat::parse_str(format!(
        r#"(module (func (export "_start") {}))"#,
        "(drop (i64.const 123456789))".repeat(12_000)
    ))
    .unwrap();
    match sandbox.compile(&body) {
        Err(ExecError::CompileBudget(m)) => {
            assert!(
                m.contains("more than the limit of 65536 bytes per function"),
                "{m}"
            )
        }
        other => panic!("{other:?}"),
    }
    // Within the limits, the module reaches the (missing) compiler.
    let ok = wat::parse_str(r#"(module (func (export "_start") (local i64)))"#).unwrap();
    assert!(matches!(sandbox.compile(&ok), Err(ExecError::Host(_))));
}

#[test]
fn a_missing_compiler_is_a_host_failure_that_is_retried() {
    let sandbox = no_compiler_sandbox();
    let wasm = wat::parse_str(HELLO).unwrap();
    assert!(matches!(sandbox.compile(&wasm), Err(ExecError::Host(_))));
    assert!(matches!(sandbox.compile(&wasm), Err(ExecError::Host(_))));
    assert_eq!(sandbox.stats().compiles, 2);
    assert_eq!(sandbox.stats().entries, 0);
}

#[test]
fn an_invalid_module_is_reported_by_the_child_as_in_process() {
    let wasm =
        wat::parse_str(r#"(module (func (export "_start") (drop (i32.add (i32.const 1)))))"#);
    // `wat` checks syntax only: this is a type error the validator finds.
    let wasm = wasm.unwrap();
    let in_child = bomb_sandbox().compile(&wasm).err();
    let in_process = Sandbox::new(Config::default())
        .unwrap()
        .compile(&wasm)
        .err();
    assert!(
        matches!(in_child, Some(ExecError::InvalidModule(_))),
        "{in_child:?}"
    );
    assert_eq!(in_child, in_process);
}

#[test]
fn an_artifact_from_an_incompatible_engine_does_not_load() {
    // The child is told to compile without NaN canonicalization; wasmtime
    // must notice that the artifact does not match this engine.
    let program = env!("CARGO_BIN_EXE_peergrid-compile");
    let mut config = Config::default();
    config.compiler = Some(CompilerCommand::with_args(
        "/bin/sh",
        [
            "-c",
            r#"read -r header; { printf '%s\n' "$header" | sed 's/deterministic=1/deterministic=0/'; cat; } | exec "$0""#,
            program,
        ],
    ));
    let sandbox = Sandbox::new(config).unwrap();
    let result = sandbox.compile(&wat::parse_str(HELLO).unwrap());
    match result {
        Err(ExecError::Host(m)) => assert!(m.contains("does not load"), "{m}"),
        other => panic!("expected a host failure, got {other:?}"),
    }
}

#[test]
fn example_jobs_compiled_in_the_child_run_exactly_as_in_process() {
    let mut config = Config::default();
    config.compiler = Some(compiler());
    let child = Sandbox::new(config).unwrap();
    let in_process = Sandbox::new(Config::default()).unwrap();
    for job in peergrid_jobs::all() {
        let input = JobInput {
            args: job.sample_args.iter().map(|a| a.to_string()).collect(),
            stdin: job.sample_stdin.to_vec(),
            ..JobInput::default()
        };
        let started = Instant::now();
        let a = child.compile(job.wasm).unwrap();
        let child_time = started.elapsed();
        let started = Instant::now();
        let b = in_process.compile(job.wasm).unwrap();
        let in_process_time = started.elapsed();
        eprintln!(
            "{}: {} bytes, compiled in the child in {child_time:?}, in-process in {in_process_time:?}",
            job.name,
            job.wasm.len()
        );
        let ra = child.run(&a, &input, &Limits::default());
        let rb = in_process.run(&b, &input, &Limits::default());
        assert_eq!(ra.result, Ok(()), "{}", job.name);
        assert_eq!(ra.stdout, job.sample_stdout, "{}", job.name);
        assert_eq!((ra.stdout, ra.fuel_used), (rb.stdout, rb.fuel_used));
    }
}

#[test]
#[ignore = "writes the bombs to $BOMB_DIR for measuring by hand"]
fn write_bombs() {
    let dir = std::env::var("BOMB_DIR").unwrap();
    let size: usize = std::env::var("BOMB_BYTES").map_or(1 << 20, |s| s.parse().unwrap());
    for (name, wasm) in [
        ("i64_chain", bombs::i64_chain(size)),
        ("locals_across_ifs", bombs::locals_across_ifs(size)),
        ("br_table_nests", bombs::br_table_nests(size)),
        ("deep_loops", bombs::deep_loops(3000)),
    ] {
        println!("{name}: {} bytes", wasm.len());
        std::fs::write(format!("{dir}/{name}.wasm"), wasm).unwrap();
    }
}
