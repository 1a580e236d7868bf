//! Compile bombs of the three shapes of issue 5, generated as WAT text:
//! each is one valid WASI command of about `bytes` bytes whose single huge
//! function costs Cranelift far more time or memory per byte than real code.

#![allow(dead_code)]

use std::fmt::Write;

/// A WASI command whose `_start` calls `$bomb` (so it is not dead code).
fn command(bomb: &str) -> Vec<u8> {
    let wat = format!(
        r#"(module
             (memory (export "memory") 1)
             {bomb}
             (func (export "_start") (drop (call $bomb (i64.const 1) (i32.const 0)))))"#
    );
    wat::parse_str(wat).expect("valid WAT")
}

/// One long chain of i64 operations in one function, every intermediate
/// result kept live on the operand stack until the end: tens of thousands
/// of simultaneously live values, combined by rotates (whose count must sit
/// in a fixed register), for the register allocator to juggle.
pub fn i64_chain(bytes: usize) -> Vec<u8> {
    // Each link: `local.get; i64.const; i64.mul` pushed (~5 bytes), and one
    // `i64.rotl` combining it at the end (1 byte).
    let links = bytes / 6;
    let mut body = String::with_capacity(links * 50);
    for i in 0..links {
        write!(
            body,
            "(i64.mul (local.get $x) (i64.const {}))",
            3 + (i % 100)
        )
        .unwrap();
    }
    body.push_str(&"(i64.rotl)".repeat(links - 1));
    command(&format!(
        "(func $bomb (param $x i64) (param $c i32) (result i64) {body})"
    ))
}

/// Thousands of i64 locals, all live from the function's start to its end,
/// across many small `if` blocks that each update one of them.
pub fn locals_across_ifs(bytes: usize) -> Vec<u8> {
    const LOCALS: usize = 4000;
    // Each `if`: ~14 bytes.
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
    // Use every local at the end, so all stay live throughout.
    body.push_str("(local.get 2)");
    for i in 1..LOCALS {
        write!(body, "(i64.xor (local.get {}))", i + 2).unwrap();
    }
    command(&format!(
        "(func $bomb (param $x i64) (param $c i32) (result i64) (local {}) {body})",
        "i64 ".repeat(LOCALS)
    ))
}

/// Deep nests of blocks left by one `br_table` whose targets are all the
/// enclosing blocks, repeated; hundreds of locals are updated between the
/// block ends and all used at the end, so each of the many edges carries
/// hundreds of values.
pub fn br_table_nests(bytes: usize) -> Vec<u8> {
    const DEPTH: usize = 1000;
    const LOCALS: usize = 256;
    // One nest: DEPTH × (block, end, table entry, a local update of ~9
    // bytes) ≈ 13 bytes per level.
    let nests = (bytes / (DEPTH * 13)).max(1);
    let mut body = String::with_capacity(nests * DEPTH * 60);
    for l in 0..LOCALS {
        write!(
            body,
            "(local.set {} (i64.add (local.get $x) (i64.const {l})))",
            l + 2
        )
        .unwrap();
    }
    let targets: String = (0..DEPTH).map(|d| format!("{d} ")).collect();
    for _ in 0..nests {
        body.push_str(&"(block ".repeat(DEPTH));
        write!(body, "(br_table {targets} (local.get $c))").unwrap();
        for d in 0..DEPTH {
            let l = 2 + d % LOCALS;
            write!(
                body,
                ") (local.set {l} (i64.add (local.get {l}) (local.get $x)))"
            )
            .unwrap();
        }
    }
    body.push_str("(local.get 2)");
    for l in 1..LOCALS {
        write!(body, "(i64.xor (local.get {}))", l + 2).unwrap();
    }
    command(&format!(
        "(func $bomb (param $x i64) (param $c i32) (result i64) (local {}) {body})",
        "i64 ".repeat(LOCALS)
    ))
}

/// A fourth shape, found while calibrating the others: `depth` nested
/// loops, each with a back edge. Cranelift's cost grows roughly with the
/// cube of the depth: 3,000 loops (26 KB) take over a minute.
pub fn deep_loops(depth: usize) -> Vec<u8> {
    let body = format!(
        "{}(local.set $y (i64.mul (local.get $x) (local.get $y))){}(local.get $y)",
        "(loop ".repeat(depth),
        "(br_if 0 (local.get $c)))".repeat(depth)
    );
    command(&format!(
        "(func $bomb (param $x i64) (param $c i32) (result i64) (local $y i64) {body})"
    ))
}
