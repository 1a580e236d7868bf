//! Hostile and broken modules, written in WAT so each does exactly one bad
//! thing.

/// Compiles WAT text to WASM bytes.
pub fn wasm(wat: &str) -> Vec<u8> {
    wat::parse_str(wat).expect("valid WAT")
}

/// Bytes that are not a WASM module at all.
pub fn not_wasm() -> Vec<u8> {
    b"#!/bin/sh\nrm -rf / # definitely not wasm\n".to_vec()
}

/// Imports a host function the sandbox does not grant.
pub fn imports_system() -> Vec<u8> {
    wasm(
        r#"(module (import "env" "system" (func $system (param i32) (result i32)))
                    (func (export "_start")))"#,
    )
}

/// Loops forever.
pub fn infinite_loop() -> Vec<u8> {
    wasm(r#"(module (func (export "_start") (loop (br 0))))"#)
}

/// Grows memory until refused, then traps.
pub fn memory_bomb() -> Vec<u8> {
    wasm(
        r#"(module (memory 1)
             (func (export "_start")
               (loop (br_if 0 (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
               unreachable))"#,
    )
}

/// Recurses without end.
pub fn deep_recursion() -> Vec<u8> {
    wasm(r#"(module (func $f (export "_start") (call $f)))"#)
}

/// Writes 64 KiB to stdout forever.
pub fn output_flood() -> Vec<u8> {
    wasm(
        r#"(module
             (import "wasi_snapshot_preview1" "fd_write"
               (func $fd_write (param i32 i32 i32 i32) (result i32)))
             (memory (export "memory") 2)
             (func (export "_start")
               ;; iovec at 0: buf = 1024, len = 65536
               (i32.store (i32.const 0) (i32.const 1024))
               (i32.store (i32.const 4) (i32.const 65536))
               (loop
                 (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
                 (br 0))))"#,
    )
}

/// Prints the first 16 bytes of WASI randomness and one clock reading, as
/// hex: honest replicas of one job must print the same.
pub fn random_and_clock() -> Vec<u8> {
    wasm(
        r#"(module
             (import "wasi_snapshot_preview1" "random_get" (func $random (param i32 i32) (result i32)))
             (import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
             (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
             (memory (export "memory") 1)
             (func (export "_start")
               (drop (call $random (i32.const 96) (i32.const 16)))
               (drop (call $clock (i32.const 0) (i64.const 1) (i32.const 112)))
               (i32.store (i32.const 0) (i32.const 96))
               (i32.store (i32.const 4) (i32.const 24))
               (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#,
    )
}

/// Exits with code 3 through WASI `proc_exit`.
pub fn exit_3() -> Vec<u8> {
    wasm(
        r#"(module
             (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
             (memory (export "memory") 1)
             (func (export "_start") (call $exit (i32.const 3))))"#,
    )
}

/// A valid module of roughly `mib` MiB (a large data segment), whose
/// `_start` writes the segment's last 8 bytes to stdout.
pub fn large_module(mib: usize) -> Vec<u8> {
    let len = mib << 20;
    let pages = len.div_ceil(65536) + 1;
    let mut data = vec![0u8; len];
    for (i, b) in data.iter_mut().enumerate() {
        *b = (i % 251) as u8;
    }
    data[len - 8..].copy_from_slice(b"BIG-END\n");
    let escaped: String = data.iter().map(|b| format!("\\{b:02x}")).collect();
    wasm(&format!(
        r#"(module
             (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
             (memory (export "memory") {pages})
             (data (i32.const 16) "{escaped}")
             (func (export "_start")
               (i32.store (i32.const 0) (i32.const {end}))
               (i32.store (i32.const 4) (i32.const 8))
               (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#,
        end = 16 + len - 8
    ))
}

/// A compile bomb of about `bytes` bytes (issue 5's second shape):
/// thousands of i64 locals, all live from start to end of one function,
/// across many small `if` blocks that each update one. Valid wasm that
/// takes Cranelift minutes and gigabytes; a node must reject it within its
/// compile budget.
pub fn compile_bomb(bytes: usize) -> Vec<u8> {
    use std::fmt::Write;
    const LOCALS: usize = 4000;
    let ifs = bytes / 14;
    let mut body = String::with_capacity(ifs * 100);
    for i in 0..LOCALS {
        write!(
            body,
            "(local.set {} (i64.add (local.get $x) (i64.const {i})))",
            i + 2
        )
        .unwrap();
    }
    for i in 0..ifs {
        let a = 2 + i % LOCALS;
        let b = 2 + (i * 7 + 1) % LOCALS;
        write!(
            body,
            "(if (local.get $c) (then (local.set {a} (i64.add (local.get {a}) (local.get {b})))))"
        )
        .unwrap();
    }
    body.push_str("(local.get 2)");
    for i in 1..LOCALS {
        write!(body, "(i64.xor (local.get {}))", i + 2).unwrap();
    }
    wasm(&format!(
        r#"(module
             (memory (export "memory") 1)
             (func $bomb (param $x i64) (param $c i32) (result i64) (local {locals}) {body})
             (func (export "_start") (drop (call $bomb (i64.const 1) (i32.const 0)))))"#,
        locals = "i64 ".repeat(LOCALS)
    ))
}
