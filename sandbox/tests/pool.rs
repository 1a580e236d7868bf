//! The pooling allocator (`Config::pool`): verdicts, outputs and fuel are
//! those of the on-demand allocator, hostile modules included; compiled
//! artifacts move freely between pooled and on-demand sandboxes and from
//! the compiler child; a module that does not fit a pool slot still runs;
//! an exhausted pool is a host failure, never a panic or a hang.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use peergrid_sandbox::{
    CompilerCommand, Config, ExecError, Execution, JobInput, Limits, PoolConfig, Sandbox,
};

const MIB: u64 = 1024 * 1024;

fn wasm(wat: &str) -> Vec<u8> {
    wat::parse_str(wat).expect("valid WAT")
}

fn pooled(instances: u32) -> Config {
    let mut config = Config::default();
    config.pool = Some(PoolConfig::new(instances));
    config
}

fn compile_and_run(sandbox: &Sandbox, wasm: &[u8], input: &JobInput, limits: &Limits) -> Execution {
    let module = sandbox.compile(wasm).expect("compiles");
    sandbox.run(&module, input, limits)
}

/// Everything of an execution that replicas compare.
fn verdict(e: &Execution) -> (Result<(), ExecError>, Vec<u8>, Vec<u8>, u64) {
    (
        e.result.clone(),
        e.stdout.clone(),
        e.stderr.clone(),
        e.fuel_used,
    )
}

fn small_memory() -> Limits {
    Limits {
        memory_bytes: 16 * MIB,
        ..Limits::default()
    }
}

fn little_fuel() -> Limits {
    Limits {
        fuel: 10_000_000,
        ..Limits::default()
    }
}

const LOOP_FOREVER: &str = r#"(module (func (export "_start") (loop $l (br $l))))"#;

#[test]
fn hostile_and_honest_modules_get_the_same_verdict_pooled_and_on_demand() {
    let unreachable = || {
        Err(ExecError::Trap(
            "wasm `unreachable` instruction executed".into(),
        ))
    };
    let cases: Vec<(&str, String, Limits, Result<(), ExecError>)> = vec![
        (
            "trivial",
            r#"(module (memory 1) (func (export "_start")))"#.into(),
            Limits::default(),
            Ok(()),
        ),
        (
            "memory grow bomb",
            r#"(module (memory 1)
                 (func (export "_start")
                   (loop $l (br_if $l (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
                   (unreachable)))"#
                .into(),
            small_memory(),
            Err(ExecError::MemoryLimit),
        ),
        (
            "huge initial memory",
            r#"(module (memory 1000) (func (export "_start")))"#.into(),
            small_memory(),
            Err(ExecError::MemoryLimit),
        ),
        (
            "huge initial memory within the limit",
            r#"(module (memory 1000) (func (export "_start")))"#.into(),
            Limits::default(),
            Ok(()),
        ),
        (
            "a 4 GiB initial memory (a whole pool slot)",
            r#"(module (memory 65536) (func (export "_start")))"#.into(),
            Limits::default(),
            Err(ExecError::MemoryLimit),
        ),
        (
            "refused growth the guest survives",
            r#"(module (memory 1)
                 (func (export "_start")
                   (if (i32.ne (memory.grow (i32.const 1000)) (i32.const -1)) (then (unreachable)))))"#
                .into(),
            small_memory(),
            Ok(()),
        ),
        (
            "growth beyond the module's own maximum",
            r#"(module (memory 1 2)
                 (func (export "_start")
                   (if (i32.eq (memory.grow (i32.const 5)) (i32.const -1)) (then (unreachable)))))"#
                .into(),
            Limits::default(),
            unreachable(),
        ),
        (
            "memory is zero when a job starts (a slot is reset between jobs)",
            r#"(module (memory 1)
                 (func (export "_start")
                   (if (i32.ne (i32.load (i32.const 64)) (i32.const 0)) (then (unreachable)))
                   (i32.store (i32.const 64) (i32.const 7))))"#
                .into(),
            Limits::default(),
            Ok(()),
        ),
        (
            "a table at the element cap",
            r#"(module (table 100000 funcref) (func (export "_start")))"#.into(),
            Limits::default(),
            Ok(()),
        ),
        (
            "a table over the element cap (does not fit a slot)",
            r#"(module (table 200000 funcref) (func (export "_start")))"#.into(),
            Limits::default(),
            Err(ExecError::MemoryLimit),
        ),
        (
            "a billion-element table",
            r#"(module (table 1000000000 funcref) (func (export "_start")))"#.into(),
            Limits::default(),
            Err(ExecError::MemoryLimit),
        ),
        (
            "tables over the cap together",
            r#"(module (table 60000 funcref) (table 60000 funcref) (func (export "_start")))"#
                .into(),
            Limits::default(),
            Err(ExecError::MemoryLimit),
        ),
        (
            "a hundred tables",
            format!(
                r#"(module {} (func (export "_start")))"#,
                "(table 1000 funcref)".repeat(100)
            ),
            Limits::default(),
            Ok(()),
        ),
        (
            "a table grower spinning on refused growth",
            r#"(module
                 (table $t 0 funcref)
                 (func (export "_start")
                   (loop $again
                     (drop (table.grow $t (ref.null func) (i32.const 1000000)))
                     (br_if $again (i32.ne (table.size $t) (i32.const -1))))))"#
                .into(),
            little_fuel(),
            Err(ExecError::MemoryLimit),
        ),
        (
            "table growth past the cap and a declared maximum",
            r#"(module
                 (table $t 0 200000 funcref)
                 (func (export "_start")
                   (if (i32.eq (table.grow $t (ref.null func) (i32.const 150000)) (i32.const -1))
                     (then (unreachable)))))"#
                .into(),
            Limits::default(),
            Err(ExecError::MemoryLimit),
        ),
        (
            "table growth past a declared maximum within the cap",
            r#"(module
                 (table $t 0 10 funcref)
                 (func (export "_start")
                   (if (i32.eq (table.grow $t (ref.null func) (i32.const 20)) (i32.const -1))
                     (then (unreachable)))))"#
                .into(),
            Limits::default(),
            unreachable(),
        ),
        (
            "out of fuel",
            LOOP_FOREVER.into(),
            little_fuel(),
            Err(ExecError::OutOfFuel),
        ),
        (
            "deep recursion",
            r#"(module (func $f (export "_start") (call $f)))"#.into(),
            Limits::default(),
            Err(ExecError::Trap("call stack exhausted".into())),
        ),
    ];
    let on_demand = Sandbox::new(Config::default()).unwrap();
    let pool = Sandbox::new(pooled(4)).unwrap();
    for (name, wat, limits, expected) in &cases {
        let bytes = wasm(wat);
        // Twice on the pool: the second run reuses the slot of the first.
        let a = compile_and_run(&on_demand, &bytes, &JobInput::default(), limits);
        let b = compile_and_run(&pool, &bytes, &JobInput::default(), limits);
        let c = compile_and_run(&pool, &bytes, &JobInput::default(), limits);
        assert_eq!(&a.result, expected, "{name}: on demand");
        assert_eq!(verdict(&a), verdict(&b), "{name}: pooled");
        assert_eq!(verdict(&b), verdict(&c), "{name}: pooled, slot reused");
    }
    for job in peergrid_jobs::all() {
        let input = JobInput {
            args: job.sample_args.iter().map(|a| a.to_string()).collect(),
            stdin: job.sample_stdin.to_vec(),
            ..JobInput::default()
        };
        let a = compile_and_run(&on_demand, job.wasm, &input, &Limits::default());
        let b = compile_and_run(&pool, job.wasm, &input, &Limits::default());
        assert_eq!(a.result, Ok(()), "{}", job.name);
        assert_eq!(a.stdout, job.sample_stdout, "{}", job.name);
        assert_eq!(verdict(&a), verdict(&b), "{}: pooled", job.name);
    }
}

#[test]
fn pooled_and_on_demand_sandboxes_share_artifacts() {
    let hashchain = &peergrid_jobs::HASHCHAIN;
    let input = JobInput {
        args: hashchain
            .sample_args
            .iter()
            .map(|a| a.to_string())
            .collect(),
        stdin: hashchain.sample_stdin.to_vec(),
        ..JobInput::default()
    };
    // A module that does not fit a pool slot goes through the disk too.
    let misfit = wasm(r#"(module (table 200000 funcref) (func (export "_start")))"#);
    let in_dir = |mut config: Config, dir: &std::path::Path| {
        config.artifact_dir = Some(dir.to_path_buf());
        Sandbox::new(config).unwrap()
    };
    for (writer, reader) in [
        (Config::default(), pooled(2)),
        (pooled(2), Config::default()),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let writer = in_dir(writer, dir.path());
        let expected = compile_and_run(&writer, hashchain.wasm, &input, &Limits::default());
        assert_eq!(expected.stdout, hashchain.sample_stdout);
        compile_and_run(&writer, &misfit, &JobInput::default(), &Limits::default());
        assert_eq!(writer.stats().disk_writes, 2);
        let reader = in_dir(reader, dir.path());
        assert_eq!(reader.engine_fingerprint(), writer.engine_fingerprint());
        let got = compile_and_run(&reader, hashchain.wasm, &input, &Limits::default());
        assert_eq!(verdict(&got), verdict(&expected));
        let got = compile_and_run(&reader, &misfit, &JobInput::default(), &Limits::default());
        assert_eq!(got.result, Err(ExecError::MemoryLimit));
        let stats = reader.stats();
        assert_eq!((stats.disk_hits, stats.compiles), (2, 0), "{stats:?}");
    }
}

#[test]
fn the_compiler_child_s_artifacts_load_into_a_pooled_engine() {
    let mut config = pooled(2);
    config.compiler = Some(CompilerCommand::new(env!("CARGO_BIN_EXE_peergrid-compile")));
    let child = Sandbox::new(config).unwrap();
    let in_process = Sandbox::new(Config::default()).unwrap();
    assert_eq!(child.engine_fingerprint(), in_process.engine_fingerprint());
    for job in peergrid_jobs::all() {
        let input = JobInput {
            args: job.sample_args.iter().map(|a| a.to_string()).collect(),
            stdin: job.sample_stdin.to_vec(),
            ..JobInput::default()
        };
        let a = compile_and_run(&child, job.wasm, &input, &Limits::default());
        let b = compile_and_run(&in_process, job.wasm, &input, &Limits::default());
        assert_eq!(a.stdout, job.sample_stdout, "{}", job.name);
        assert_eq!(verdict(&a), verdict(&b), "{}", job.name);
    }
    let misfit = wasm(r#"(module (table 200000 funcref) (func (export "_start")))"#);
    let execution = compile_and_run(&child, &misfit, &JobInput::default(), &Limits::default());
    assert_eq!(execution.result, Err(ExecError::MemoryLimit));
}

#[test]
fn an_exhausted_pool_is_a_host_failure_not_a_panic_or_a_hang() {
    let sandbox = Arc::new(Sandbox::new(pooled(1)).unwrap());
    let forever = sandbox.compile(&wasm(LOOP_FOREVER)).unwrap();
    let trivial = sandbox
        .compile(&wasm(r#"(module (memory 1) (func (export "_start")))"#))
        .unwrap();
    // One job holds the only instance until its wall time runs out.
    let holder = std::thread::spawn({
        let sandbox = Arc::clone(&sandbox);
        move || {
            let limits = Limits {
                fuel: u64::MAX,
                wall_time: Duration::from_secs(2),
                ..Limits::default()
            };
            sandbox.run(&forever, &JobInput::default(), &limits)
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let refused = sandbox.run(&trivial, &JobInput::default(), &Limits::default());
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "it waited: {:?}",
        started.elapsed()
    );
    match &refused.result {
        Err(ExecError::Host(message)) => {
            assert!(message.contains("pool"), "{message}");
            assert!(!refused.result.as_ref().unwrap_err().is_deterministic());
        }
        other => panic!("expected a host failure, got {other:?}"),
    }
    assert_eq!(holder.join().unwrap().result, Err(ExecError::Timeout));
    // The instance went back to the pool.
    let execution = sandbox.run(&trivial, &JobInput::default(), &Limits::default());
    assert_eq!(execution.result, Ok(()));
}

#[test]
fn as_many_threads_as_instances_never_exhaust_the_pool() {
    let sandbox = Arc::new(Sandbox::new(pooled(2)).unwrap());
    let module = sandbox
        .compile(&wasm(
            r#"(module (memory 1) (table 10 funcref)
                 (func (export "_start") (drop (memory.grow (i32.const 3)))))"#,
        ))
        .unwrap();
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let sandbox = Arc::clone(&sandbox);
            let module = Arc::clone(&module);
            std::thread::spawn(move || {
                for _ in 0..500 {
                    let e = sandbox.run(&module, &JobInput::default(), &Limits::default());
                    assert_eq!(e.result, Ok(()));
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
}

#[test]
fn a_pool_of_no_instances_is_refused() {
    let error = Sandbox::new(pooled(0)).unwrap_err();
    assert!(error.to_string().contains("pool"), "{error}");
}
