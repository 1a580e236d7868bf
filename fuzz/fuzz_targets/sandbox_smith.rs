//! Structured modules from `wasm-smith` (0.254.2, the wasm-tools release of
//! wasmtime 48), shaped like WASI commands: a `_start` function and a
//! `memory` export, imports drawn from the WASI preview 1 functions the
//! sandbox provides (including its own `poll_oneoff`). Random bytes rarely
//! get past the module header; these reach the pre-checks, code generation,
//! linking and the host functions. Each module is compiled in process and
//! run twice under tight limits (see `run_twice`).
#![no_main]

use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use peergrid_fuzz::{run_twice, sandbox, verbose};
use peergrid_sandbox::{ExecError, JobInput};
use wasm_encoder::{
    CodeSection, EntityType, ExportKind, ExportSection, Function, FunctionSection, ImportSection,
    Instruction, MemorySection, MemoryType, Module, TypeSection, ValType,
};

/// WASI preview 1 imports a module may use: (name, params, results).
const WASI: &[(&str, &[ValType], &[ValType])] = {
    use ValType::{I32, I64};
    &[
        ("fd_write", &[I32, I32, I32, I32], &[I32]),
        ("fd_read", &[I32, I32, I32, I32], &[I32]),
        ("poll_oneoff", &[I32, I32, I32, I32], &[I32]),
        ("random_get", &[I32, I32], &[I32]),
        ("args_sizes_get", &[I32, I32], &[I32]),
        ("args_get", &[I32, I32], &[I32]),
        ("environ_sizes_get", &[I32, I32], &[I32]),
        ("clock_time_get", &[I32, I64, I32], &[I32]),
        ("clock_res_get", &[I32, I32], &[I32]),
        ("fd_fdstat_get", &[I32, I32], &[I32]),
        ("fd_close", &[I32], &[I32]),
        ("sched_yield", &[], &[I32]),
        ("proc_exit", &[I32], &[]),
    ]
};

fn available_imports() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let mut types = TypeSection::new();
        let mut imports = ImportSection::new();
        for (i, (name, params, results)) in WASI.iter().enumerate() {
            types
                .ty()
                .function(params.iter().copied(), results.iter().copied());
            imports.import(
                "wasi_snapshot_preview1",
                name,
                EntityType::Function(i as u32),
            );
        }
        let mut module = Module::new();
        module.section(&types).section(&imports);
        module.finish()
    })
}

fn required_exports() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let mut types = TypeSection::new();
        types.ty().function([], []);
        let mut functions = FunctionSection::new();
        functions.function(0);
        let mut memories = MemorySection::new();
        memories.memory(MemoryType {
            minimum: 1,
            maximum: None,
            memory64: false,
            shared: false,
            page_size_log2: None,
        });
        let mut exports = ExportSection::new();
        exports.export("_start", ExportKind::Func, 0);
        exports.export("memory", ExportKind::Memory, 0);
        let mut code = CodeSection::new();
        let mut body = Function::new([]);
        body.instruction(&Instruction::End);
        code.function(&body);
        let mut module = Module::new();
        module
            .section(&types)
            .section(&functions)
            .section(&memories)
            .section(&exports)
            .section(&code);
        module.finish()
    })
}

fn config(u: &mut Unstructured<'_>) -> arbitrary::Result<wasm_smith::Config> {
    Ok(wasm_smith::Config {
        available_imports: Some(available_imports().to_vec()),
        exports: Some(required_exports().to_vec()),
        // What the sandbox's engine leaves off (deterministic mode, no GC
        // support compiled in, one memory).
        threads_enabled: false,
        shared_everything_threads_enabled: false,
        relaxed_simd_enabled: false,
        gc_enabled: false,
        exceptions_enabled: false,
        custom_page_sizes_enabled: false,
        wide_arithmetic_enabled: false,
        max_memories: 1,
        max_memory32_bytes: 8 << 20,
        max_memory64_bytes: 8 << 20,
        // Small modules, fast iterations; the fuzzer picks the rest.
        max_funcs: 16,
        max_instructions: 400,
        max_data_segments: 8,
        max_element_segments: 8,
        max_tables: 2,
        max_table_elements: 1000,
        simd_enabled: u.arbitrary()?,
        memory64_enabled: u.arbitrary()?,
        tail_call_enabled: u.arbitrary()?,
        disallow_traps: u.arbitrary()?,
        ..wasm_smith::Config::default()
    })
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(config) = config(&mut u) else {
        return;
    };
    let Ok(input) = <(Vec<u8>, [u8; 4])>::arbitrary(&mut u) else {
        return;
    };
    let Ok(module) = wasm_smith::Module::new(config, &mut u) else {
        return;
    };
    let wasm = module.to_bytes();
    match sandbox().compile(&wasm) {
        Ok(compiled) => {
            let input = JobInput {
                args: vec!["3".into()],
                stdin: input.0,
                seed: [input.1[0]; 32],
                clock_base_unix_ns: u64::from(u32::from_le_bytes(input.1)) << 20,
            };
            run_twice(&compiled, &input);
        }
        Err(e) => {
            if verbose() {
                eprintln!("compile: {e}");
            }
            assert!(
                matches!(e, ExecError::InvalidModule(_) | ExecError::CompileBudget(_)),
                "unexpected compile error {e:?}"
            );
        }
    }
});
