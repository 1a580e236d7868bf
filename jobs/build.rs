//! Build script for `peergrid-jobs`: compiles the example job crates
//! (`job-primes`, `job-mandelbrot`, `job-hashchain`, `job-matmul`,
//! `job-nbody`, `job-hashmix`) to `wasm32-wasip1` with a nested `cargo build` and copies the modules into `OUT_DIR`, where
//! `src/lib.rs` embeds them with `include_bytes!`.
//!
//! * The nested build has its own target directory, `<target-dir>/wasm-jobs`,
//!   shared by every profile and by build/check/clippy/test/doc, so it is
//!   compiled once and is a quick no-op afterwards. Being a different target
//!   directory, it never waits on the outer cargo's build-directory lock.
//! * Its environment is scrubbed of everything the outer cargo sets for build
//!   scripts or for host compilation (rustflags, wrappers such as clippy-driver,
//!   jobserver, `CARGO_CFG_*`, ...), so every outer command sees the same
//!   fingerprints and the jobs are built the same way.
//! * The release profile for the modules comes from `wasm-profile.toml`
//!   (passed with `--config`), independent of the workspace's profiles.
//! * `build-wasm.sh` runs the same nested build by hand.
//!
//! Set `PEERGRID_JOBS_WASM_DIR` to a directory holding the prebuilt modules
//! (`job-primes.wasm`, `job-mandelbrot.wasm`, ..., one per entry of [`JOBS`])
//! to skip the nested build altogether (e.g. on a toolchain without rustup).

use std::env;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The target the jobs are compiled for.
const WASM_TARGET: &str = "wasm32-wasip1";

/// The job packages and their directories (relative to this package).
/// Keep `packages` in `build-wasm.sh` in sync.
const JOBS: [(&str, &str); 6] = [
    ("job-primes", "primes"),
    ("job-mandelbrot", "mandelbrot"),
    ("job-hashchain", "hashchain"),
    ("job-matmul", "matmul"),
    ("job-nbody", "nbody"),
    ("job-hashmix", "hashmix"),
];

/// Directory with prebuilt modules that replaces the nested build.
const PREBUILT_ENV: &str = "PEERGRID_JOBS_WASM_DIR";

/// Set on the nested cargo to catch accidental recursion.
const NESTED_ENV: &str = "PEERGRID_JOBS_NESTED_BUILD";

/// Environment variables removed from the nested cargo's environment.
const SCRUB_EXACT: &[&str] = &[
    // Flags and wrappers meant for the outer (host) build; clippy sets
    // RUSTC_WORKSPACE_WRAPPER.
    "RUSTFLAGS",
    "RUSTDOCFLAGS",
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_ENCODED_RUSTDOCFLAGS",
    "RUSTC_WRAPPER",
    "RUSTC_WORKSPACE_WRAPPER",
    "CARGO_BUILD_RUSTFLAGS",
    "CARGO_BUILD_RUSTDOCFLAGS",
    "CARGO_BUILD_RUSTC_WRAPPER",
    "CARGO_BUILD_RUSTC_WORKSPACE_WRAPPER",
    "CLIPPY_ARGS",
    "CLIPPY_CONF_DIR",
    // Where and for what the outer cargo builds.
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET",
    "CARGO_BUILD_TARGET_DIR",
    "CARGO_BUILD_BUILD_DIR",
    // Jobserver.
    "CARGO_MAKEFLAGS",
    "MAKEFLAGS",
    "MFLAGS",
    // Set by cargo for this build script.
    "CARGO",
    "CARGO_PRIMARY_PACKAGE",
    "CARGO_CRATE_NAME",
    "CARGO_RUSTC_CURRENT_DIR",
    "OUT_DIR",
    "TARGET",
    "HOST",
    "NUM_JOBS",
    "OPT_LEVEL",
    "DEBUG",
    "PROFILE",
    "RUSTDOC",
    "RUSTC_LINKER",
];

/// Prefixes of environment variables removed from the nested cargo's
/// environment (all set by cargo for this build script or by `cargo fix`).
const SCRUB_PREFIXES: &[&str] = &[
    "CARGO_CFG_",
    "CARGO_FEATURE_",
    "CARGO_PKG_",
    "CARGO_MANIFEST_",
    "CARGO_BIN_",
    "DEP_",
    "__CARGO_",
];

fn main() {
    if env::var_os(NESTED_ENV).is_some() {
        panic!("peergrid-jobs build script invoked recursively from its own nested wasm build");
    }
    let manifest_dir = PathBuf::from(env_var("CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env_var("OUT_DIR"));

    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=wasm-profile.toml");
    for (_, dir) in JOBS {
        println!("cargo::rerun-if-changed={dir}/src");
        println!("cargo::rerun-if-changed={dir}/Cargo.toml");
    }
    println!("cargo::rerun-if-env-changed={PREBUILT_ENV}");

    let wasm_dir = match env::var_os(PREBUILT_ENV).filter(|dir| !dir.is_empty()) {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            for (package, _) in JOBS {
                println!(
                    "cargo::rerun-if-changed={}",
                    dir.join(wasm_file(package)).display()
                );
            }
            dir
        }
        None => {
            ensure_wasm_target();
            let target_dir = nested_target_dir(&out_dir);
            build_jobs(&manifest_dir, &target_dir);
            target_dir.join(WASM_TARGET).join("release")
        }
    };
    for (package, _) in JOBS {
        copy_if_changed(
            &wasm_dir.join(wasm_file(package)),
            &out_dir.join(wasm_file(package)),
        );
    }
}

/// File name of a job's module.
fn wasm_file(package: &str) -> String {
    format!("{package}.wasm")
}

/// A variable cargo always sets for build scripts.
fn env_var(name: &str) -> OsString {
    env::var_os(name).unwrap_or_else(|| panic!("cargo did not set {name} for the build script"))
}

/// Makes sure the standard library for `wasm32-wasip1` is installed, running
/// `rustup target add` if it is not.
fn ensure_wasm_target() {
    let target_lib = target_lib_dir();
    if target_lib.is_dir() {
        return;
    }
    println!("cargo::warning=installing the {WASM_TARGET} target: rustup target add {WASM_TARGET}");
    let problem = match Command::new("rustup")
        .args(["target", "add", WASM_TARGET])
        .status()
    {
        Err(e) => format!("`rustup` could not be run ({e})"),
        Ok(status) if !status.success() => {
            format!("`rustup target add {WASM_TARGET}` failed ({status})")
        }
        Ok(_) if !target_lib.is_dir() => format!(
            "`rustup target add {WASM_TARGET}` succeeded, but {} is still missing \
             (is RUSTC a toolchain that rustup does not manage?)",
            target_lib.display()
        ),
        Ok(_) => return,
    };
    panic!(
        "\n\npeergrid-jobs compiles its example jobs to {WASM_TARGET}, but that target is not \
         installed for this toolchain, and installing it automatically did not work: \
         {problem}.\n\nPlease run\n\n    rustup target add {WASM_TARGET}\n\nand build again \
         (or set {PREBUILT_ENV} to a directory with prebuilt job-*.wasm files).\n"
    );
}

/// `$(rustc --print sysroot)/lib/rustlib/wasm32-wasip1`, using the `rustc`
/// cargo builds with.
fn target_lib_dir() -> PathBuf {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let output = Command::new(&rustc).args(["--print", "sysroot"]).output();
    let output = match output {
        Ok(output) if output.status.success() => output,
        other => panic!(
            "cannot run `{} --print sysroot`: {other:?}",
            rustc.to_string_lossy()
        ),
    };
    let sysroot = String::from_utf8_lossy(&output.stdout);
    Path::new(sysroot.trim())
        .join("lib")
        .join("rustlib")
        .join(WASM_TARGET)
}

/// `<target-dir>/wasm-jobs`, where `<target-dir>` is the outer build's target
/// (or build) directory, found from `OUT_DIR`.
///
/// `OUT_DIR` is `<target-dir>/[<triple>/]<profile>/build/<pkg>-<hash>/out`;
/// cargo marks `<target-dir>` with a `CACHEDIR.TAG` file, which is tried first.
fn nested_target_dir(out_dir: &Path) -> PathBuf {
    let tagged = out_dir
        .ancestors()
        .skip(1)
        .find(|dir| dir.join("CACHEDIR.TAG").is_file());
    let by_layout = || {
        let profile_dir = out_dir
            .ancestors()
            .find(|dir| dir.file_name().is_some_and(|name| name == "build"))?
            .parent()?;
        let above = profile_dir.parent()?;
        let triple = env::var_os("TARGET");
        if triple.is_some_and(|t| above.file_name() == Some(t.as_os_str())) {
            above.parent()
        } else {
            Some(above)
        }
    };
    tagged
        .or_else(by_layout)
        .unwrap_or(out_dir)
        .join("wasm-jobs")
}

/// Runs `cargo build --release --target wasm32-wasip1 -p job-...` into
/// `target_dir`, panicking with cargo's output if it fails.
fn build_jobs(manifest_dir: &Path, target_dir: &Path) {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(manifest_dir)
        .arg("--config")
        .arg(manifest_dir.join("wasm-profile.toml"))
        .args([
            "build",
            "--release",
            "--target",
            WASM_TARGET,
            "--color",
            "never",
        ])
        .arg("--manifest-path")
        .arg(manifest_dir.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir);
    for (package, _) in JOBS {
        command.args(["-p", package]);
    }
    for (name, _) in env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        if SCRUB_EXACT.contains(&name) || SCRUB_PREFIXES.iter().any(|p| name.starts_with(p)) {
            command.env_remove(name);
        }
    }
    command.env(NESTED_ENV, "1");

    let command_line = std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|arg| arg.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ");
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run the nested cargo build `{command_line}`: {e}"));
    if !output.status.success() {
        panic!(
            "\n\nbuilding the example jobs for {WASM_TARGET} failed ({}).\ncommand: {command_line}\n\
             --- nested cargo stderr ---\n{}\n--- nested cargo stdout ---\n{}\n",
            output.status,
            String::from_utf8_lossy(&output.stderr),
            String::from_utf8_lossy(&output.stdout),
        );
    }
}

/// Copies a built module into `OUT_DIR`, leaving the copy untouched when the
/// content is unchanged (so `include_bytes!` users are not rebuilt needlessly).
fn copy_if_changed(from: &Path, to: &Path) {
    let bytes = fs::read(from)
        .unwrap_or_else(|e| panic!("cannot read the built job module {}: {e}", from.display()));
    if !bytes.starts_with(b"\0asm") {
        panic!("{} is not a WebAssembly module", from.display());
    }
    if fs::read(to).ok().as_deref() != Some(bytes.as_slice()) {
        fs::write(to, &bytes).unwrap_or_else(|e| panic!("cannot write {}: {e}", to.display()));
    }
}
