#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into fuzz/seeds/<target>/.

Valid inputs, so the fuzzer starts past the signature checks and the wasm
header: signed envelopes of every domain, job specs addressed to the
admission target's worker, adverts, and small WASI command modules. Keys
are the fuzz crate's fixed identities, `Identity::from_secret([n + 1; 32])`
(ed25519 secret seeds), so signatures made here verify there.

Needs Python 3 and the `cryptography` package (`pip install cryptography`).
Run from anywhere: `python3 fuzz/seeds.py`. Output is deterministic
(ed25519 signatures are), so re-running changes nothing.
"""

import hashlib
import pathlib
import struct

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

OUT = pathlib.Path(__file__).resolve().parent / "seeds"
T0 = 1_800_000_000_000

# The domain tags of peergrid_proto::envelope::Domain.
JOB, RESULT, ADVERT, HELLO = (
    b"peergrid/job/v1\0",
    b"peergrid/result/v1\0",
    b"peergrid/advert/v1\0",
    b"peergrid/hello/v1\0",
)


# --- protobuf, just enough -------------------------------------------------

def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field_varint(num, value):
    return varint(num << 3) + varint(value) if value else b""


def field_bytes(num, value):
    return varint(num << 3 | 2) + varint(len(value)) + value


# --- identities and envelopes ----------------------------------------------

def identity(n):
    """Identity n of peergrid_fuzz::identities(): secret [n + 1; 32]."""
    return Ed25519PrivateKey.from_private_bytes(bytes([n + 1]) * 32)


def public_key(key):
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def peer_id(key):
    return hashlib.sha256(public_key(key)).digest()


def envelope(key, tag, payload):
    """pb::SignedEnvelope { payload, public_key, signature } as bytes."""
    return (
        field_bytes(1, payload)
        + field_bytes(2, public_key(key))
        + field_bytes(3, key.sign(tag + payload))
    )


def job_limits(fuel=0, memory=0, wall_ms=0, out=0, err=0):
    return (
        field_varint(1, fuel)
        + field_varint(2, memory)
        + field_varint(3, wall_ms)
        + field_varint(4, out)
        + field_varint(5, err)
    )


def job_spec(worker, args=(), stdin=b"", limits=None, nonce=b"\x03" * 16):
    spec = field_bytes(1, b"\x01" * 32) + field_bytes(2, b"\x02" * 32)
    for a in args:
        spec += field_bytes(3, a.encode())
    if stdin:
        spec += field_bytes(4, stdin)
    if limits is not None:
        spec += field_bytes(5, limits)
    spec += field_varint(6, 1_700_000_000_000_000_000)
    spec += field_bytes(7, worker) + field_bytes(8, nonce)
    spec += field_varint(9, T0 + 60_000)
    return spec


def advert(key, addrs, seq=T0, ts=T0, features=(), version="peergrid 0.1.0"):
    msg = field_bytes(1, public_key(key))
    for a in addrs:
        msg += field_bytes(2, a.encode())
    msg += field_varint(3, 2) + field_varint(4, 4) + field_varint(5, 8)
    msg += field_varint(6, 256 << 20)
    msg += field_bytes(7, job_limits(10_000_000_000, 256 << 20, 60_000, 1 << 20, 64 << 10))
    for f in features:
        msg += field_bytes(8, f.encode())
    msg += field_bytes(9, version.encode())
    msg += field_varint(10, seq) + field_varint(11, ts)
    return msg


# --- wasm, just enough -------------------------------------------------------

def vec(items):
    return varint(len(items)) + b"".join(items)


def name(s):
    return varint(len(s)) + s.encode()


def section(sid, body):
    return bytes([sid]) + varint(len(body)) + body


def functype(params, results):
    return b"\x60" + vec([bytes([p]) for p in params]) + vec([bytes([r]) for r in results])


I32, I64 = 0x7F, 0x7E


def wasi_module(imports, body, data=b"", locals_=b"\x00", pages=1):
    """A WASI command: imports from wasi_snapshot_preview1 [(name, (params,
    results))], one `_start` (the last type) with `body`, one exported
    memory of `pages`, and an optional data segment at offset 16."""
    types = [functype(*sig) for _, sig in imports] + [functype([], [])]
    start = len(imports)
    mod = b"\0asm\x01\x00\x00\x00"
    mod += section(1, vec(types))
    if imports:
        mod += section(2, vec([
            name("wasi_snapshot_preview1") + name(n) + b"\x00" + varint(i)
            for i, (n, _) in enumerate(imports)
        ]))
    mod += section(3, vec([varint(start)]))
    mod += section(5, vec([b"\x00" + varint(pages)]))
    mod += section(7, vec([
        name("_start") + b"\x00" + varint(start),
        name("memory") + b"\x02" + b"\x00",
    ]))
    code = locals_ + body + b"\x0b"
    mod += section(10, vec([varint(len(code)) + code]))
    if data:
        mod += section(11, vec([b"\x00\x41\x10\x0b" + vec([bytes([c]) for c in data])]))
    return mod


def i32c(n):
    """i32.const n (signed LEB128)."""
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if (n == 0 and not b & 0x40) or (n == -1 and b & 0x40):
            out.append(b)
            break
        out.append(b | 0x80)
    return b"\x41" + bytes(out)


FD_WRITE = ("fd_write", ([I32, I32, I32, I32], [I32]))
PROC_EXIT = ("proc_exit", ([I32], []))
RANDOM_GET = ("random_get", ([I32, I32], [I32]))
POLL = ("poll_oneoff", ([I32, I32, I32, I32], [I32]))


def hello_module():
    # iovec at 0: {ptr 16, len 6}; "hello\n" at 16; fd_write(1, 0, 1, 8)
    body = (
        i32c(0) + i32c(16) + b"\x36\x02\x00"
        + i32c(4) + i32c(6) + b"\x36\x02\x00"
        + i32c(1) + i32c(0) + i32c(1) + i32c(8) + b"\x10\x00" + b"\x1a"
    )
    return wasi_module([FD_WRITE], body, data=b"hello\n")


def exit_module():
    return wasi_module([PROC_EXIT], i32c(3) + b"\x10\x00")


def random_module():
    # random_get(16, 32); then write it out: iovec {16, 32} at 0
    body = (
        i32c(16) + i32c(32) + b"\x10\x00" + b"\x1a"
        + i32c(0) + i32c(16) + b"\x36\x02\x00"
        + i32c(4) + i32c(32) + b"\x36\x02\x00"
        + i32c(1) + i32c(0) + i32c(1) + i32c(8) + b"\x10\x01" + b"\x1a"
    )
    return wasi_module([RANDOM_GET, FD_WRITE], body)


def sleep_module():
    # One clock subscription at 64 (48 bytes: userdata, u8 tag 0 at +8,
    # clock id at +16, timeout at +24), events at 128, nevents at 8.
    body = (
        i32c(72) + i32c(0) + b"\x3a\x00\x00"          # tag = clock
        + i32c(80) + i32c(1) + b"\x36\x02\x00"        # monotonic
        + i32c(88) + b"\x42\x80\x94\xeb\xdc\x03" + b"\x37\x03\x00"  # 1 s
        + i32c(64) + i32c(128) + i32c(1) + i32c(8) + b"\x10\x00" + b"\x1a"
    )
    return wasi_module([POLL], body)


def spin_module():
    return wasi_module([], b"\x03\x40\x0c\x00\x0b")  # loop br 0 end


def grow_module():
    # loop: memory.grow(16) != -1 -> again
    body = b"\x03\x40" + i32c(16) + b"\x40\x00" + i32c(-1) + b"\x47" + b"\x0d\x00" + b"\x0b"
    return wasi_module([], body)


def trap_module():
    return wasi_module([], b"\x00")  # unreachable


def write(target, seed, data):
    d = OUT / target
    d.mkdir(parents=True, exist_ok=True)
    (d / seed).write_bytes(data)


def main():
    me = [identity(n) for n in range(16)]
    worker = peer_id(me[1])

    # envelope: a valid envelope of every domain, and malformed fields.
    job = job_spec(worker, args=["10"], stdin=b"in")
    write("envelope", "job", envelope(me[2], JOB, job))
    write("envelope", "result", envelope(me[3], RESULT, b"\x0a\x20" + b"\x01" * 32))
    write("envelope", "advert", envelope(me[4], ADVERT, advert(me[4], ["10.1.0.1:7400"])))
    write("envelope", "hello", envelope(me[5], HELLO, b"\x07" * 32))
    write("envelope", "short-key", field_bytes(1, b"x") + field_bytes(2, b"\x01" * 31)
          + field_bytes(3, b"\x00" * 64))

    # envelope_roundtrip: arbitrary-built; a few raw byte strings do.
    write("envelope_roundtrip", "small", b"\x02\x01" + b"payload" * 3)

    # admission: 0x01 + JobSpec signed by the target; 0x00 + ExecuteRequest.
    write("admission", "signed-good", b"\x01" + job)
    write("admission", "signed-limits", b"\x01" + job_spec(
        worker, limits=job_limits(5_000_000, 8 << 20, 2_000, 1024, 512)))
    write("admission", "signed-greedy", b"\x01" + job_spec(
        worker, limits=job_limits(memory=1 << 40)))
    write("admission", "signed-other-worker", b"\x01" + job_spec(peer_id(me[2])))
    write("admission", "raw-good", b"\x00" + field_bytes(1, envelope(me[2], JOB, job)))
    write("admission", "raw-as-result", b"\x00" + field_bytes(1, envelope(me[2], RESULT, job)))

    # advert: 0x01 + Advert payload signed by the target (identity 0);
    # 0x00 + a raw SignedEnvelope.
    write("advert", "signed-good", b"\x01" + advert(me[0], ["10.1.0.1:7400", "[2001:db8::1]:7400"],
                                                    features=["simd", "bulk-memory"]))
    write("advert", "signed-other-key", b"\x01" + advert(me[1], ["10.1.0.1:7400"]))
    write("advert", "signed-no-addr", b"\x01" + advert(me[0], []))
    write("advert", "raw-good", b"\x00" + envelope(me[6], ADVERT, advert(me[6], ["10.2.0.1:7400"])))
    write("advert", "raw-as-job", b"\x00" + envelope(me[6], JOB, advert(me[6], ["10.2.0.1:7400"])))

    # gossip: arbitrary-built (structured ops); start from nothing but a
    # few short byte strings.
    for i, s in enumerate([b"\x00" * 16, b"\x01\x02\x03\x04" * 8, bytes(range(64))]):
        write("gossip", f"bytes-{i}", s)

    # sandbox_compile: small WASI commands; the example jobs are added by
    # README.md's command (they are built by the peergrid-jobs crate).
    for n, m in [("hello", hello_module()), ("exit", exit_module()),
                 ("random", random_module()), ("sleep", sleep_module()),
                 ("spin", spin_module()), ("grow", grow_module()),
                 ("trap", trap_module())]:
        write("sandbox_compile", f"{n}.wasm", m)

    # sandbox_smith: arbitrary-built modules from wasm-smith.
    for i, s in enumerate([b"\x00" * 64, bytes(range(256)), b"\xff\x13" * 200]):
        write("sandbox_smith", f"bytes-{i}", s)


if __name__ == "__main__":
    main()
