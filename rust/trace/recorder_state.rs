//! The state the recorder's callers and its flush thread share: the
//! counters, the flush and commit state behind one lock, and the flags
//! both sides read without it.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64};
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use crate::error::CoreError;

/// How long a waiter polls for a commit, and the flush thread for the next
/// record after a commit someone waited for, before they sleep (a thread
/// wake-up costs as much on a virtual machine).
pub const SPIN_AFTER_COMMIT: Duration = Duration::from_micros(50);

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) recorded: AtomicU64,
    pub(crate) sealed: AtomicU64,
    pub(crate) written: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) high_water: AtomicU64,
    pub(crate) sink_errors: AtomicU64,
    pub(crate) orphaned: AtomicU64,
    pub(crate) repaired_bytes: AtomicU64,
}

#[derive(Default)]
pub(crate) struct FlushState {
    /// Everything written up to here has been synced.
    pub(crate) synced: u64,
    /// The highest `recorded` count a `flush()` is waiting for.
    pub(crate) requested: u64,
    /// A sink failure not yet reported to a caller.
    pub(crate) error: Option<CoreError>,
    pub(crate) finished: bool,
    /// The highest commit ticket whose records (and all before) are written.
    pub(crate) committed: u64,
    /// Why the sinks cannot write, while they cannot (cleared by the next
    /// batch written).
    pub(crate) failing: Option<String>,
}

pub(crate) struct Shared {
    pub(crate) counters: Counters,
    pub(crate) state: Mutex<FlushState>,
    pub(crate) changed: Condvar,
    pub(crate) closing: AtomicBool,
    /// A producer has woken the flush thread and it has not looked yet.
    pub(crate) wake_sent: AtomicBool,
    /// The last commit ticket handed out.
    pub(crate) tickets: AtomicU64,
    /// Mirrors `FlushState::failing.is_some()`, for lock-free checks.
    pub(crate) failing: AtomicBool,
    /// A file descriptor (a pipe's write end) to write one byte to when a
    /// commit or a failure is published and `notice_wanted` is set; -1: none.
    pub(crate) notice_fd: AtomicI32,
    pub(crate) notice_wanted: AtomicBool,
    /// Mirrors `FlushState::committed`, for lock-free polling.
    pub(crate) committed_fast: AtomicU64,
}

/// How a wait for a commit ticket ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Commit {
    /// Everything pushed before the ticket is written to every sink.
    Committed,
    /// The sinks cannot write now (the reason); the records stay queued
    /// and are retried.
    Failing(String),
    /// The timeout passed first.
    TimedOut,
}

impl Shared {
    pub(crate) fn new() -> Self {
        Shared {
            counters: Counters::default(),
            state: Mutex::new(FlushState::default()),
            changed: Condvar::new(),
            closing: AtomicBool::new(false),
            wake_sent: AtomicBool::new(false),
            tickets: AtomicU64::new(0),
            failing: AtomicBool::new(false),
            notice_fd: AtomicI32::new(-1),
            notice_wanted: AtomicBool::new(false),
            committed_fast: AtomicU64::new(0),
        }
    }
}
