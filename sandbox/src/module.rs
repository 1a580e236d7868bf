//! [`CompiledModule`]: a validated, compiled and pre-linked job module, and
//! the checks that turn bad modules into
//! [`ExecError::InvalidModule`](crate::ExecError::InvalidModule) (or, for
//! modules too costly to compile,
//! [`ExecError::CompileBudget`](crate::ExecError::CompileBudget)).

use std::collections::HashSet;
use std::fmt;

use sha2::{Digest, Sha256};
use wasmtime::{Engine, ExternType, InstancePre, Linker, Module};

use crate::state::JobState;
use crate::{Config, ExecError, compiler, precheck};

/// SHA-256 of a module's bytes: its identity in the compile cache.
pub type ModuleHash = [u8; 32];

/// Hashes module bytes.
pub(crate) fn hash(wasm: &[u8]) -> ModuleHash {
    Sha256::digest(wasm).into()
}

/// A job module ready to run: compiled machine code plus its imports
/// resolved against the sandbox's linker, so each run only has to create a
/// store and instantiate. Cheap to share (`Arc`) between threads.
pub struct CompiledModule {
    hash: ModuleHash,
    size: usize,
    pub(crate) pre: InstancePre<JobState>,
}

impl CompiledModule {
    /// SHA-256 of the module bytes.
    pub fn hash(&self) -> ModuleHash {
        self.hash
    }

    /// Size of the module bytes it was compiled from.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The underlying wasmtime module.
    pub fn module(&self) -> &Module {
        self.pre.module()
    }

    /// Pre-checks, validates, compiles and links `wasm`: in a child process
    /// under the compile budget if [`Config::compiler`] is set, else in this
    /// thread. `provided` lists the `(module, name)` imports the linker
    /// defines.
    pub(crate) fn compile(
        engine: &Engine,
        linker: &Linker<JobState>,
        provided: &HashSet<(String, String)>,
        config: &Config,
        wasm: &[u8],
        hash: ModuleHash,
    ) -> Result<Self, ExecError> {
        if !wasm.starts_with(b"\0asm") {
            return Err(ExecError::InvalidModule(
                "not a WebAssembly binary (no \\0asm magic number)".into(),
            ));
        }
        precheck::check(wasm, config)?;
        let module = match &config.compiler {
            None => Module::from_binary(engine, wasm)
                .map_err(|e| ExecError::InvalidModule(format!("{e:#}")))?,
            Some(command) => {
                let artifact = compiler::compile(command, config, wasm, &hash)?;
                deserialize(engine, &artifact)?
            }
        };
        check_imports(&module, provided)?;
        check_start(&module)?;
        let pre = linker
            .instantiate_pre(&module)
            .map_err(|e| ExecError::InvalidModule(format!("{e:#}")))?;
        Ok(Self {
            hash,
            size: wasm.len(),
            pre,
        })
    }
}

impl fmt::Debug for CompiledModule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompiledModule")
            .field("hash", &hex::encode(self.hash))
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

/// Loads an artifact of the compiler child process.
///
/// A wasmtime-internal mismatch (the child is a different build, or its
/// engine settings differ) is the node's problem, not the module's:
/// [`ExecError::Host`], which is not cached.
#[allow(unsafe_code)]
fn deserialize(engine: &Engine, artifact: &[u8]) -> Result<Module, ExecError> {
    // SAFETY: `Module::deserialize` trusts its input to be wasmtime's own
    // output, since native code in it is run as is. `artifact` is exactly
    // what our compiler child process (`compiler::child_main`, started by
    // this node from `Config::compiler`, never by a peer) wrote to its
    // stdout pipe: the result of `Engine::precompile_module` after
    // wasmtime's full validation of the untrusted wasm. No peer-controlled
    // bytes reach this call other than through that compiler. wasmtime
    // checks the artifact's header (wasmtime version, target, and every
    // compile-relevant engine setting) and returns an error on any
    // mismatch, which we report instead of loading.
    unsafe { Module::deserialize(engine, artifact) }.map_err(|e| {
        ExecError::Host(format!(
            "the compiler's artifact does not load into this engine: {e:#}"
        ))
    })
}

/// Rejects the first import the sandbox does not provide, naming it.
fn check_imports(module: &Module, provided: &HashSet<(String, String)>) -> Result<(), ExecError> {
    for import in module.imports() {
        let key = (import.module().to_owned(), import.name().to_owned());
        if !provided.contains(&key) {
            return Err(ExecError::InvalidModule(format!(
                "imports {}::{}, which the sandbox does not provide",
                import.module(),
                import.name()
            )));
        }
    }
    Ok(())
}

/// Requires a `_start: [] -> []` export (a WASI command).
fn check_start(module: &Module) -> Result<(), ExecError> {
    match module.get_export("_start") {
        None => Err(ExecError::InvalidModule(
            "module has no _start export (not a WASI command)".into(),
        )),
        Some(ExternType::Func(ty)) if ty.params().len() == 0 && ty.results().len() == 0 => Ok(()),
        Some(_) => Err(ExecError::InvalidModule(
            "the _start export is not a function taking and returning nothing".into(),
        )),
    }
}
