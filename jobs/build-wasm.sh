#!/usr/bin/env bash
# Builds the example jobs (job-primes, job-mandelbrot, job-hashchain,
# job-matmul, job-nbody, job-hashmix) for wasm32-wasip1 by hand and prints
# the paths of the .wasm files, one per line.
#
# This is the same nested build that jobs/build.rs runs during every cargo
# build of peergrid-jobs: same command line, same cleaned environment, same
# target directory (<workspace target dir>/wasm-jobs) and same profile
# (jobs/wasm-profile.toml), so the two share their build cache.
# Keep the command below in sync with build_jobs() in jobs/build.rs, and
# `packages` with JOBS there.
#
# Usage: jobs/build-wasm.sh [extra cargo build arguments, e.g. -v]
set -euo pipefail

jobs_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$jobs_dir"
cargo="${CARGO:-cargo}"
target=wasm32-wasip1
packages=(job-primes job-mandelbrot job-hashchain job-matmul job-nbody job-hashmix)

workspace_target_dir="$("$cargo" metadata --format-version 1 --no-deps --manifest-path "$jobs_dir/Cargo.toml" |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
if [[ -z "$workspace_target_dir" ]]; then
    echo "build-wasm.sh: cannot find the workspace target directory with cargo metadata" >&2
    exit 1
fi
target_dir="$workspace_target_dir/wasm-jobs"

if [[ ! -d "$(rustc --print sysroot)/lib/rustlib/$target" ]]; then
    rustup target add "$target"
fi

# The environment build.rs gives the nested cargo: no host flags or wrappers.
unset RUSTFLAGS RUSTDOCFLAGS CARGO_ENCODED_RUSTFLAGS CARGO_ENCODED_RUSTDOCFLAGS \
    RUSTC_WRAPPER RUSTC_WORKSPACE_WRAPPER CARGO_BUILD_RUSTFLAGS CARGO_BUILD_RUSTDOCFLAGS \
    CARGO_BUILD_RUSTC_WRAPPER CARGO_BUILD_RUSTC_WORKSPACE_WRAPPER \
    CARGO_TARGET_DIR CARGO_BUILD_TARGET CARGO_BUILD_TARGET_DIR CARGO_BUILD_BUILD_DIR \
    CARGO_MAKEFLAGS MAKEFLAGS MFLAGS

"$cargo" --config "$jobs_dir/wasm-profile.toml" build --release --target "$target" \
    --manifest-path "$jobs_dir/Cargo.toml" --target-dir "$target_dir" \
    "${packages[@]/#/-p=}" "$@"

for package in "${packages[@]}"; do
    echo "$target_dir/$target/release/$package.wasm"
done
