//! `peergrid_sandbox::Sandbox::compile` on arbitrary bytes, with the
//! in-process compiler (default `Config`): bytes that are not a valid
//! module give an error, never a panic. Whatever compiles is run (twice,
//! see `run_twice`) under tight limits with a fixed input: a run never
//! panics, stays within its limits and is deterministic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peergrid_fuzz::{run_twice, sandbox, verbose};
use peergrid_sandbox::{ExecError, JobInput};

fuzz_target!(|data: &[u8]| {
    match sandbox().compile(data) {
        Ok(module) => {
            assert!(data.starts_with(b"\0asm"));
            assert_eq!(module.size(), data.len());
            let input = JobInput {
                args: vec!["7".into()],
                stdin: b"12345\n".to_vec(),
                seed: [9; 32],
                clock_base_unix_ns: 1_800_000_000_000_000_000,
            };
            run_twice(&module, &input);
        }
        Err(e) => {
            if verbose() {
                eprintln!("compile: {e}");
            }
            assert!(
                matches!(e, ExecError::InvalidModule(_) | ExecError::CompileBudget(_)),
                "unexpected compile error {e:?}"
            );
            let _ = e.to_string();
        }
    }
});
