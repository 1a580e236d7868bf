//! A deterministic, never-blocking WASI preview 1 `poll_oneoff`, installed
//! over wasmtime-wasi's own.
//!
//! wasmtime-wasi's `poll_oneoff` really sleeps for clock subscriptions, for
//! up to `u64::MAX` ns, and epoch interruption cannot stop a host call: a
//! guest calling `sleep` could pin a worker thread past its wall-time limit
//! (or forever) and would observe host timing. This one never blocks:
//! stdin, stdout and stderr are always ready (they are in-memory pipes), and
//! when only clocks are subscribed, virtual time jumps to the earliest
//! deadline, so a sleeping guest sees time pass without any waiting.
//!
//! Differences from wasmtime-wasi, all deterministic: descriptors other
//! than 0 (read) and 1, 2 (write) give `EBADF` (the sandbox opens no
//! others; stdio renumbered with `fd_renumber` is not tracked), and
//! subscription pointers need not be aligned.

use std::ops::Range;

use wasmtime::{Caller, Extern, Linker};

use crate::clock::VirtualTime;
use crate::state::JobState;

const ERRNO_SUCCESS: i32 = 0;
const ERRNO_BADF: i32 = 8;
const ERRNO_FAULT: i32 = 21;
const ERRNO_INVAL: i32 = 28;

const SUBSCRIPTION_SIZE: usize = 48;
const EVENT_SIZE: usize = 32;

const EVENTTYPE_CLOCK: u8 = 0;
const EVENTTYPE_FD_READ: u8 = 1;
const EVENTTYPE_FD_WRITE: u8 = 2;

const CLOCKID_REALTIME: u32 = 0;
const CLOCKID_MONOTONIC: u32 = 1;
const SUBCLOCKFLAGS_ABSTIME: u16 = 1;

/// Replaces `wasi_snapshot_preview1::poll_oneoff` in `linker` (which must
/// already hold wasmtime-wasi's definitions).
pub(crate) fn add_to_linker(linker: &mut Linker<JobState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let result = linker
        .func_wrap("wasi_snapshot_preview1", "poll_oneoff", poll_oneoff)
        .map(|_| ());
    linker.allow_shadowing(false);
    result
}

/// The host function: `poll_oneoff(in, out, nsubscriptions, nevents_out) -> errno`.
fn poll_oneoff(
    mut caller: Caller<'_, JobState>,
    subscriptions: i32,
    events: i32,
    nsubscriptions: i32,
    nevents_out: i32,
) -> wasmtime::Result<i32> {
    let Some(Extern::Memory(memory)) = caller.get_export("memory") else {
        wasmtime::bail!("poll_oneoff called by a module without an exported memory");
    };
    let (mem, state) = memory.data_and_store_mut(&mut caller);
    // Pointers and sizes are u32 in WASI preview 1.
    let request = Request {
        subscriptions: subscriptions as u32,
        events: events as u32,
        nsubscriptions: nsubscriptions as u32,
        nevents_out: nevents_out as u32,
    };
    Ok(match poll(mem, &state.time, request) {
        Ok(()) => ERRNO_SUCCESS,
        Err(errno) => errno,
    })
}

/// The guest's arguments to `poll_oneoff`.
#[derive(Debug, Clone, Copy)]
struct Request {
    subscriptions: u32,
    events: u32,
    nsubscriptions: u32,
    nevents_out: u32,
}

/// What a subscription waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A clock firing `remaining` ns from now.
    Clock { remaining: u64 },
    /// A descriptor being readable (`EVENTTYPE_FD_READ`) or writable.
    Fd { eventtype: u8 },
}

/// Serves one `poll_oneoff` call against guest memory `mem`; the error is a
/// WASI errno. Reads the subscriptions twice instead of buffering them so
/// host memory stays bounded whatever `nsubscriptions` is.
fn poll(mem: &mut [u8], time: &VirtualTime, request: Request) -> Result<(), i32> {
    let n = usize::try_from(request.nsubscriptions).map_err(|_| ERRNO_FAULT)?;
    if n == 0 {
        return Err(ERRNO_INVAL);
    }
    let subscriptions = region(mem.len(), request.subscriptions, n, SUBSCRIPTION_SIZE)?;
    let events = region(mem.len(), request.events, n, EVENT_SIZE)?;
    let nevents_out = region(mem.len(), request.nevents_out, 1, 4)?;
    let now = time.peek();
    let now_wall = time.peek_wall();

    let mut any_fd = false;
    let mut earliest = u64::MAX;
    for index in 0..n {
        let (_, kind) = parse(mem, subscriptions.start, index, now, now_wall)?;
        match kind {
            Kind::Clock { remaining } => earliest = earliest.min(remaining),
            Kind::Fd { .. } => any_fd = true,
        }
    }
    // Ready descriptors win over clocks that have not expired yet;
    // otherwise sleep (virtually) until the earliest clock.
    let fire_at = if any_fd {
        0
    } else {
        time.advance(earliest);
        earliest
    };

    let mut count: usize = 0;
    for index in 0..n {
        let (userdata, kind) = parse(mem, subscriptions.start, index, now, now_wall)?;
        let (eventtype, nbytes) = match kind {
            Kind::Clock { remaining } if remaining <= fire_at => (EVENTTYPE_CLOCK, 0u64),
            Kind::Clock { .. } => continue,
            Kind::Fd { eventtype } => (eventtype, 1),
        };
        let at = events.start + count * EVENT_SIZE;
        let event = mem.get_mut(at..at + EVENT_SIZE).ok_or(ERRNO_FAULT)?;
        event.fill(0);
        event[0..8].copy_from_slice(&userdata.to_le_bytes());
        // error (u16 at 8) stays 0 = success.
        event[10] = eventtype;
        event[16..24].copy_from_slice(&nbytes.to_le_bytes());
        // flags (u16 at 24) stay 0.
        count += 1;
    }
    let count = u32::try_from(count).map_err(|_| ERRNO_FAULT)?;
    mem.get_mut(nevents_out)
        .ok_or(ERRNO_FAULT)?
        .copy_from_slice(&count.to_le_bytes());
    Ok(())
}

/// The byte range of `count` records of `size` bytes at guest address `ptr`,
/// or `EFAULT` if it is not inside memory.
fn region(mem_len: usize, ptr: u32, count: usize, size: usize) -> Result<Range<usize>, i32> {
    let start = usize::try_from(ptr).map_err(|_| ERRNO_FAULT)?;
    let len = count.checked_mul(size).ok_or(ERRNO_FAULT)?;
    let end = start.checked_add(len).ok_or(ERRNO_FAULT)?;
    if end > mem_len {
        return Err(ERRNO_FAULT);
    }
    Ok(start..end)
}

/// Decodes subscription `index` of the array at `base`.
fn parse(
    mem: &[u8],
    base: usize,
    index: usize,
    now: u64,
    now_wall: u64,
) -> Result<(u64, Kind), i32> {
    let at = base + index * SUBSCRIPTION_SIZE;
    let sub = mem.get(at..at + SUBSCRIPTION_SIZE).ok_or(ERRNO_FAULT)?;
    let userdata = read_u64(sub, 0)?;
    let kind = match sub[8] {
        EVENTTYPE_CLOCK => {
            let id = read_u32(sub, 16)?;
            let timeout = read_u64(sub, 24)?;
            let flags = u16::from_le_bytes([sub[40], sub[41]]);
            let absolute = flags & SUBCLOCKFLAGS_ABSTIME != 0;
            let remaining = match (id, absolute) {
                (CLOCKID_REALTIME | CLOCKID_MONOTONIC, false) => timeout,
                (CLOCKID_MONOTONIC, true) => timeout.saturating_sub(now),
                (CLOCKID_REALTIME, true) => timeout.saturating_sub(now_wall),
                _ => return Err(ERRNO_INVAL),
            };
            Kind::Clock { remaining }
        }
        eventtype @ (EVENTTYPE_FD_READ | EVENTTYPE_FD_WRITE) => {
            let fd = read_u32(sub, 16)?;
            let ready = match eventtype {
                EVENTTYPE_FD_READ => fd == 0,
                _ => fd == 1 || fd == 2,
            };
            if !ready {
                return Err(ERRNO_BADF);
            }
            Kind::Fd { eventtype }
        }
        _ => return Err(ERRNO_INVAL),
    };
    Ok((userdata, kind))
}

fn read_u32(bytes: &[u8], at: usize) -> Result<u32, i32> {
    bytes
        .get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes)
        .ok_or(ERRNO_FAULT)
}

fn read_u64(bytes: &[u8], at: usize) -> Result<u64, i32> {
    bytes
        .get(at..at + 8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .ok_or(ERRNO_FAULT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock(userdata: u64, id: u32, timeout: u64, flags: u16) -> [u8; SUBSCRIPTION_SIZE] {
        let mut sub = [0u8; SUBSCRIPTION_SIZE];
        sub[0..8].copy_from_slice(&userdata.to_le_bytes());
        sub[8] = EVENTTYPE_CLOCK;
        sub[16..20].copy_from_slice(&id.to_le_bytes());
        sub[24..32].copy_from_slice(&timeout.to_le_bytes());
        sub[40..42].copy_from_slice(&flags.to_le_bytes());
        sub
    }

    fn fd(userdata: u64, eventtype: u8, fd: u32) -> [u8; SUBSCRIPTION_SIZE] {
        let mut sub = [0u8; SUBSCRIPTION_SIZE];
        sub[0..8].copy_from_slice(&userdata.to_le_bytes());
        sub[8] = eventtype;
        sub[16..20].copy_from_slice(&fd.to_le_bytes());
        sub
    }

    /// Runs a poll with the subscriptions at 0, events at 1024, count at 2048;
    /// returns the result and the (userdata, eventtype) of each event.
    fn run(
        subs: &[[u8; SUBSCRIPTION_SIZE]],
        time: &VirtualTime,
    ) -> (Result<(), i32>, Vec<(u64, u8)>) {
        let mut mem = vec![0u8; 4096];
        for (i, sub) in subs.iter().enumerate() {
            mem[i * SUBSCRIPTION_SIZE..(i + 1) * SUBSCRIPTION_SIZE].copy_from_slice(sub);
        }
        let request = Request {
            subscriptions: 0,
            events: 1024,
            nsubscriptions: subs.len() as u32,
            nevents_out: 2048,
        };
        let result = poll(&mut mem, time, request);
        let count = u32::from_le_bytes([mem[2048], mem[2049], mem[2050], mem[2051]]) as usize;
        let events = (0..count)
            .map(|i| {
                let at = 1024 + i * EVENT_SIZE;
                let mut userdata = [0u8; 8];
                userdata.copy_from_slice(&mem[at..at + 8]);
                (u64::from_le_bytes(userdata), mem[at + 10])
            })
            .collect();
        (result, events)
    }

    #[test]
    fn sleeping_advances_virtual_time_without_waiting() {
        let time = VirtualTime::new(0);
        let started = std::time::Instant::now();
        let (result, events) = run(&[clock(7, CLOCKID_MONOTONIC, 3_600_000_000_000, 0)], &time);
        assert_eq!(result, Ok(()));
        assert_eq!(events, [(7, EVENTTYPE_CLOCK)]);
        assert_eq!(time.peek(), 3_600_000_000_000);
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn earliest_clock_fires_and_absolute_deadlines_count_from_now() {
        let time = VirtualTime::new(1_000);
        time.advance(500);
        let subs = [
            clock(1, CLOCKID_MONOTONIC, 900, SUBCLOCKFLAGS_ABSTIME), // 400 from now
            clock(2, CLOCKID_REALTIME, 300, 0),                      // 300 from now
            clock(3, CLOCKID_REALTIME, 1_800, SUBCLOCKFLAGS_ABSTIME), // 300 from now
        ];
        let (result, events) = run(&subs, &time);
        assert_eq!(result, Ok(()));
        assert_eq!(events, [(2, EVENTTYPE_CLOCK), (3, EVENTTYPE_CLOCK)]);
        assert_eq!(time.peek(), 800);
    }

    #[test]
    fn ready_stdio_wins_over_pending_clocks() {
        let time = VirtualTime::new(0);
        let subs = [
            clock(1, CLOCKID_MONOTONIC, 10, 0),
            fd(2, EVENTTYPE_FD_READ, 0),
            fd(3, EVENTTYPE_FD_WRITE, 2),
            clock(4, CLOCKID_MONOTONIC, 0, 0),
        ];
        let (result, events) = run(&subs, &time);
        assert_eq!(result, Ok(()));
        assert_eq!(
            events,
            [
                (2, EVENTTYPE_FD_READ),
                (3, EVENTTYPE_FD_WRITE),
                (4, EVENTTYPE_CLOCK)
            ]
        );
        assert_eq!(time.peek(), 0);
    }

    #[test]
    fn bad_requests_get_errnos() {
        let time = VirtualTime::new(0);
        assert_eq!(run(&[], &time).0, Err(ERRNO_INVAL));
        assert_eq!(
            run(&[fd(1, EVENTTYPE_FD_READ, 1)], &time).0,
            Err(ERRNO_BADF)
        );
        assert_eq!(
            run(&[fd(1, EVENTTYPE_FD_WRITE, 9)], &time).0,
            Err(ERRNO_BADF)
        );
        assert_eq!(run(&[clock(1, 2, 0, 0)], &time).0, Err(ERRNO_INVAL));
        let mut bad_tag = fd(1, 0, 0);
        bad_tag[8] = 9;
        assert_eq!(run(&[bad_tag], &time).0, Err(ERRNO_INVAL));

        let mut mem = vec![0u8; 100];
        let request = Request {
            subscriptions: 90,
            events: 0,
            nsubscriptions: 1,
            nevents_out: 0,
        };
        assert_eq!(poll(&mut mem, &time, request), Err(ERRNO_FAULT));
        let request = Request {
            subscriptions: 0,
            events: 0,
            nsubscriptions: u32::MAX,
            nevents_out: 0,
        };
        assert_eq!(poll(&mut mem, &time, request), Err(ERRNO_FAULT));
    }
}
