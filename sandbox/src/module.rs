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
    /// thread. The code is loaded into the first of `runtimes` that takes
    /// it (see [`load`]). `provided` lists the `(module, name)` imports the
    /// linkers define. With `want_artifact`, also returns the serialized
    /// artifact (for the disk cache).
    pub(crate) fn compile(
        runtimes: &[Runtime],
        provided: &HashSet<(String, String)>,
        config: &Config,
        wasm: &[u8],
        hash: ModuleHash,
        want_artifact: bool,
    ) -> Result<(Self, Option<Vec<u8>>), ExecError> {
        if !wasm.starts_with(b"\0asm") {
            return Err(ExecError::InvalidModule(
                "not a WebAssembly binary (no \\0asm magic number)".into(),
            ));
        }
        precheck::check(wasm, config)?;
        let (artifact, loader): (Vec<u8>, Loader) = match &config.compiler {
            None => {
                // Compiled, not yet loaded: no engine's allocator has had a
                // say, so `load` can pick the engine.
                let engine = &runtimes.first().ok_or_else(no_runtime)?.engine;
                let artifact = engine
                    .precompile_module(wasm)
                    .map_err(|e| ExecError::InvalidModule(format!("{e:#}")))?;
                (artifact, deserialize_own)
            }
            Some(command) => (
                compiler::compile(command, config, wasm, &hash)?,
                deserialize_child,
            ),
        };
        let (module, runtime) = load(runtimes, &artifact, loader).map_err(|e| {
            ExecError::Host(format!(
                "the compiled artifact does not load into this engine: {e}"
            ))
        })?;
        Ok((
            Self::link(&runtime.linker, provided, module, hash, wasm.len())?,
            want_artifact.then_some(artifact),
        ))
    }

    /// Loads an artifact read back from this node's artifact directory
    /// (already checked against its checksum by [`crate::artifacts`]) into
    /// the first of `runtimes` that takes it, and links it. `size` is the
    /// size of the module bytes. `Err` means the file must not be used
    /// (wasmtime refused it, or it does not link): the caller deletes it
    /// and compiles afresh.
    pub(crate) fn from_cached_artifact(
        runtimes: &[Runtime],
        provided: &HashSet<(String, String)>,
        artifact: &[u8],
        hash: ModuleHash,
        size: usize,
    ) -> Result<Self, String> {
        Self::from_artifact(runtimes, provided, artifact, hash, size, deserialize_cached)
    }

    /// Loads an artifact the runner process's parent sent over its pipe
    /// ([`crate::runner`]) and links it. `size` is the size of the module
    /// bytes.
    pub(crate) fn from_runner_parent(
        runtimes: &[Runtime],
        provided: &HashSet<(String, String)>,
        artifact: &[u8],
        hash: ModuleHash,
        size: usize,
    ) -> Result<Self, String> {
        Self::from_artifact(
            runtimes,
            provided,
            artifact,
            hash,
            size,
            deserialize_from_parent,
        )
    }

    /// Loads `artifact` with `loader` into the first of `runtimes` that
    /// takes it, and links it.
    fn from_artifact(
        runtimes: &[Runtime],
        provided: &HashSet<(String, String)>,
        artifact: &[u8],
        hash: ModuleHash,
        size: usize,
        loader: Loader,
    ) -> Result<Self, String> {
        let (module, runtime) = load(runtimes, artifact, loader)?;
        Self::link(&runtime.linker, provided, module, hash, size).map_err(|e| e.to_string())
    }

    /// Checks `module`'s imports and `_start` and pre-links it.
    fn link(
        linker: &Linker<JobState>,
        provided: &HashSet<(String, String)>,
        module: Module,
        hash: ModuleHash,
        size: usize,
    ) -> Result<Self, ExecError> {
        check_imports(&module, provided)?;
        check_start(&module)?;
        let pre = linker
            .instantiate_pre(&module)
            .map_err(|e| ExecError::InvalidModule(format!("{e:#}")))?;
        Ok(Self { hash, size, pre })
    }
}

/// A wasmtime engine and the WASI linker built for it.
pub(crate) struct Runtime {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<JobState>,
}

/// One of the `unsafe` artifact loaders below, each for one source of
/// artifacts.
type Loader = fn(&Engine, &[u8]) -> Result<Module, String>;

/// Loads `artifact` into the first of `runtimes` that accepts it, or
/// returns the first one's error.
///
/// All runtimes share the compile settings, so the artifact is compatible
/// with each; they differ only in instance allocation. A pooled engine
/// refuses, when the module is loaded, a module that cannot fit its slots
/// (see [`Config::pool`]); the on-demand engine after it then takes the
/// module, which runs exactly as it would without a pool.
fn load<'r>(
    runtimes: &'r [Runtime],
    artifact: &[u8],
    deserialize: Loader,
) -> Result<(Module, &'r Runtime), String> {
    let mut first_error = None;
    for (i, runtime) in runtimes.iter().enumerate() {
        match deserialize(&runtime.engine, artifact) {
            Ok(module) => {
                if let Some(error) = &first_error {
                    tracing::debug!(
                        engine = i,
                        refused = %error,
                        "module does not fit the instance pool: it runs on demand"
                    );
                }
                return Ok((module, runtime));
            }
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
    Err(first_error.unwrap_or_else(|| "the sandbox has no engine".into()))
}

/// The error of a sandbox without an engine, which [`crate::Sandbox::new`]
/// never builds.
fn no_runtime() -> ExecError {
    ExecError::Host("the sandbox has no engine".into())
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
/// engine settings differ) is the node's problem, not the module's: the
/// caller reports it as [`ExecError::Host`], which is not cached.
#[allow(unsafe_code)]
fn deserialize_child(engine: &Engine, artifact: &[u8]) -> Result<Module, String> {
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
    unsafe { Module::deserialize(engine, artifact) }.map_err(|e| format!("{e:#}"))
}

/// Loads an artifact this process has just compiled (no
/// [`Config::compiler`]).
#[allow(unsafe_code)]
fn deserialize_own(engine: &Engine, artifact: &[u8]) -> Result<Module, String> {
    // SAFETY: `artifact` is the unmodified return value of
    // `Engine::precompile_module`, called in `CompiledModule::compile` a
    // moment ago by an engine of this sandbox after wasmtime's full
    // validation of the wasm; it never left this process. Every engine of
    // a sandbox has the same compile settings (`sandbox::engine_config`),
    // and wasmtime checks the header against `engine` anyway.
    unsafe { Module::deserialize(engine, artifact) }.map_err(|e| format!("{e:#}"))
}

/// Loads an artifact from this node's own artifact directory
/// ([`Config::artifact_dir`]).
///
/// Any error (wasmtime's header check: another wasmtime version or engine
/// configuration, though the file name's engine fingerprint already rules
/// that out) is returned for the caller to discard the file.
#[allow(unsafe_code)]
fn deserialize_cached(engine: &Engine, artifact: &[u8]) -> Result<Module, String> {
    // SAFETY: `Module::deserialize` runs the native code in its input as
    // is, so the input must be wasmtime's own unmodified output. These bytes
    // come from a file in `Config::artifact_dir`, which is inside the node's
    // own data directory and written only by this node
    // (`artifacts::ArtifactDir::store`): the output of
    // `Engine::precompile_module` in our compiler child process or in this
    // one, each after wasmtime fully validated and compiled the untrusted
    // wasm. Peers never write files there: they send wasm, never compiled
    // code. Before this call, `artifacts` checked the file's SHA-256 over
    // the artifact (catching torn writes, truncation and bit rot), that it
    // was stored for this very module hash, and the file name carries this
    // engine's compatibility fingerprint; wasmtime then checks its own
    // header (version, target, engine settings). Anyone able to write into
    // the data directory can already replace the node's identity and
    // state, so this trusts nobody new. We read the file into memory rather
    // than use `Module::deserialize_file`, whose mmap would let a later
    // truncation of the file crash the node (SIGBUS).
    unsafe { Module::deserialize(engine, artifact) }
        .map_err(|e| format!("wasmtime refused the artifact: {e:#}"))
}

/// Loads an artifact in a runner process, as its parent sent it.
#[allow(unsafe_code)]
fn deserialize_from_parent(engine: &Engine, artifact: &[u8]) -> Result<Module, String> {
    // SAFETY: this runs only in a runner process (`runner::child`), which
    // the node itself started from `Config::compiler` and which reads
    // nothing but the node's pipe. The node sends `Module::serialize` of a
    // module it loaded itself (from its compiler child or its own artifact
    // directory, see the loaders above), i.e. wasmtime's own output for
    // wasm that wasmtime fully validated; peers send wasm, never compiled
    // code. The runner's engine has the node's compile settings (the
    // runner header carries them), and wasmtime checks its header
    // (version, target, engine settings) and refuses a mismatch.
    unsafe { Module::deserialize(engine, artifact) }
        .map_err(|e| format!("wasmtime refused the artifact: {e:#}"))
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
