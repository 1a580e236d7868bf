//! Cheap pre-checks of an untrusted module before anything compiles it:
//! function count, body sizes and local counts against the [`Config`]
//! limits, by a single streaming pass of `wasmparser` (the version wasmtime
//! itself uses) that parses section headers and function-body prologues
//! only: no validation, no allocation proportional to the module.
//!
//! These reject the crudest compile bombs (one enormous function, a
//! function with millions of locals) in microseconds and deterministically.
//! Subtler bombs fit within any limit real programs need, and are stopped
//! by the compile budget of [`crate::compiler`].

use wasmparser::{Parser, Payload};

use crate::{Config, ExecError};

/// Checks `wasm` against the pre-compile limits of `config`.
///
/// A module that cannot be parsed is [`ExecError::InvalidModule`], with the
/// message wasmtime would give (`failed to parse WebAssembly module: …`);
/// one over a limit is [`ExecError::CompileBudget`] naming the limit.
pub(crate) fn check(wasm: &[u8], config: &Config) -> Result<(), ExecError> {
    let mut index: u64 = 0;
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.map_err(parse_error)? {
            Payload::FunctionSection(reader) => functions(reader.count(), config)?,
            Payload::CodeSectionStart { count, .. } => functions(count, config)?,
            Payload::CodeSectionEntry(body) => {
                let size = body.range().len();
                if size > config.max_function_body_bytes {
                    return Err(ExecError::CompileBudget(format!(
                        "defined function {index} has a body of {size} bytes, more than the \
                         limit of {} bytes per function",
                        config.max_function_body_bytes
                    )));
                }
                let mut reader = body.get_locals_reader().map_err(parse_error)?;
                let mut locals: u64 = 0;
                for _ in 0..reader.get_count() {
                    let (count, _) = reader.read().map_err(parse_error)?;
                    locals += u64::from(count);
                    if locals > u64::from(config.max_function_locals) {
                        return Err(ExecError::CompileBudget(format!(
                            "defined function {index} declares more than {} locals, the limit \
                             per function",
                            config.max_function_locals
                        )));
                    }
                }
                index += 1;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Rejects a function or code section declaring more than
/// [`Config::max_functions`] functions.
fn functions(count: u32, config: &Config) -> Result<(), ExecError> {
    if count > config.max_functions {
        return Err(ExecError::CompileBudget(format!(
            "the module defines {count} functions, more than the limit of {}",
            config.max_functions
        )));
    }
    Ok(())
}

/// A parse error, worded as wasmtime words it.
fn parse_error(error: wasmparser::BinaryReaderError) -> ExecError {
    ExecError::InvalidModule(format!("failed to parse WebAssembly module: {error}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn module(wat: &str) -> Vec<u8> {
        wat::parse_str(wat).unwrap()
    }

    fn budget_message(wasm: &[u8], config: &Config) -> String {
        match check(wasm, config) {
            Err(ExecError::CompileBudget(message)) => message,
            other => panic!("expected CompileBudget, got {other:?}"),
        }
    }

    #[test]
    fn a_normal_module_passes() {
        let wasm = module(
            r#"(module (func (param i32) (local i64 i64) (local f32))
                       (func (export "_start")))"#,
        );
        assert_eq!(check(&wasm, &Config::default()), Ok(()));
    }

    #[test]
    fn too_many_locals_are_named() {
        let config = Config {
            max_function_locals: 10,
            ..Config::default()
        };
        let ok = module("(module (func (local i32 i32 i32 i32 i32) (local i64 i64 i64 i64 i64)))");
        assert_eq!(check(&ok, &config), Ok(()));
        let wasm = module(
            "(module (func) (func (local i32 i32 i32 i32 i32) (local i64 i64 i64 i64 i64 i64)))",
        );
        assert_eq!(
            budget_message(&wasm, &config),
            "defined function 1 declares more than 10 locals, the limit per function"
        );
    }

    #[test]
    fn a_huge_local_count_is_rejected_without_overflow() {
        // Two declarations of 2^32 - 1 locals each (valid encoding, absurd).
        let mut wasm = module("(module (func))");
        // Rewrite the body: locals vec of 2 × (0xffffffff × i32), then `end`.
        let body: Vec<u8> = [
            &[0x02][..],
            &[0xff, 0xff, 0xff, 0xff, 0x0f, 0x7f],
            &[0xff, 0xff, 0xff, 0xff, 0x0f, 0x7f],
            &[0x0b],
        ]
        .concat();
        // The code section is the last 6 bytes: id, size, count, body size,
        // no locals, `end`.
        assert_eq!(wasm[wasm.len() - 6..], [0x0a, 0x04, 0x01, 0x02, 0x00, 0x0b]);
        wasm.truncate(wasm.len() - 6);
        wasm.extend([0x0a, (body.len() + 2) as u8, 0x01, body.len() as u8]);
        wasm.extend(&body);
        let message = budget_message(&wasm, &Config::default());
        assert!(message.contains("more than 50000 locals"), "{message}");
    }

    #[test]
    fn an_oversized_body_is_named() {
        let config = Config {
            max_function_body_bytes: 100,
            ..Config::default()
        };
        let body = "(drop (i32.const 1))".repeat(100);
        let wasm = module(&format!("(module (func {body}))"));
        let message = budget_message(&wasm, &config);
        assert!(
            message.starts_with("defined function 0 has a body of ")
                && message.ends_with("more than the limit of 100 bytes per function"),
            "{message}"
        );
    }

    #[test]
    fn too_many_functions_are_named() {
        let config = Config {
            max_functions: 3,
            ..Config::default()
        };
        let wasm = module(&format!("(module {})", "(func)".repeat(4)));
        assert_eq!(
            budget_message(&wasm, &config),
            "the module defines 4 functions, more than the limit of 3"
        );
    }

    #[test]
    fn garbage_is_a_parse_error() {
        match check(b"\0asm\x01\0\0\0\x0a\xff", &Config::default()) {
            Err(ExecError::InvalidModule(m)) => {
                assert!(m.starts_with("failed to parse WebAssembly module"), "{m}")
            }
            other => panic!("{other:?}"),
        }
    }
}
