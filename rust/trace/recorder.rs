//! The recorder: callers push compact records onto a bounded lock-free
//! queue; one flush thread (`flush.rs`) seals them (numbers, hashes,
//! chains) and hands batches to the sinks. Nothing is lost: a full queue
//! makes the caller wait (or, by choice, drops and counts), and a failing
//! sink keeps its batch and retries while the error waits for the next
//! `flush()`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, SendTimeoutError, Sender, TrySendError};
use parking_lot::Mutex;

use crate::error::{CoreError, Result};
use crate::trace::chain::{Body, Chains, Checkpointing, Record};
use crate::trace::flush::FlushThread;
use crate::trace::hash::HashAlgorithm;
use crate::trace::recorder_state::{Commit, Shared, SPIN_AFTER_COMMIT};
use crate::trace::sink::Sink;

/// Pushes look at the queue's depth (for the high-water mark and the early
/// wake of the flush thread) once per this many events.
const DEPTH_EVERY: u64 = 64;

/// What a full queue does to the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// Wait for room; nothing is ever dropped.
    Block,
    /// Drop the record and count it in `stats().dropped` (never a
    /// chain's first or last record: those wait for room).
    Drop,
}

impl Overflow {
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "block" => Ok(Overflow::Block),
            "drop" => Ok(Overflow::Drop),
            _ => Err(CoreError::invalid(
                "INVALID_OPTION",
                "/overflow",
                format!("unknown overflow policy {name:?} (use \"block\" or \"drop\")"),
            )),
        }
    }
}

#[derive(Debug, Clone)]
pub struct RecorderConfig {
    pub capacity: usize,
    pub overflow: Overflow,
    pub algorithm: HashAlgorithm,
    pub batch_max: usize,
    /// How long a push waits for room in a full queue (`Overflow::Block`)
    /// before it fails with `TRACE_UNAVAILABLE`; `None` waits as long as
    /// it takes. A server sets it so that no request waits unbounded.
    pub queue_wait: Option<Duration>,
    /// Signed checkpoints (a key and a policy), sealed on the flush thread.
    pub checkpoints: Option<Arc<Checkpointing>>,
}

impl Default for RecorderConfig {
    fn default() -> Self {
        RecorderConfig {
            capacity: 65_536,
            overflow: Overflow::Block,
            algorithm: HashAlgorithm::Sha256,
            batch_max: 4096,
            queue_wait: None,
            checkpoints: None,
        }
    }
}

/// A snapshot of the recorder's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecorderStats {
    pub recorded: u64,
    pub sealed: u64,
    pub written: u64,
    pub dropped: u64,
    pub queue_depth: u64,
    pub high_water_mark: u64,
    pub sink_errors: u64,
    pub orphaned: u64,
    pub repaired_bytes: u64,
}

/// The result of a non-blocking push.
pub enum Pushed {
    Queued,
    Dropped,
    /// The queue is full and the policy is `block`: push it again with
    /// [`Recorder::push_blocking`] (after releasing anything the flush
    /// thread may need, such as the GIL).
    Full(Record),
}

pub struct Recorder {
    tx: Sender<Record>,
    wake: Sender<()>,
    shared: Arc<Shared>,
    overflow: Overflow,
    algorithm: HashAlgorithm,
    capacity: u64,
    queue_wait: Option<Duration>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Recorder {
    pub fn start(config: RecorderConfig, sinks: Vec<Box<dyn Sink>>) -> Result<Self> {
        let (tx, rx) = bounded(config.capacity.max(1));
        let (wake, wake_rx) = crossbeam_channel::unbounded();
        let shared = Arc::new(Shared::new());
        let repaired: u64 = sinks.iter().map(|s| s.repaired_bytes()).sum();
        shared
            .counters
            .repaired_bytes
            .store(repaired, Ordering::Relaxed);
        let chains = Chains::new(config.algorithm, config.checkpoints.clone());
        let worker = FlushThread::new(
            rx,
            wake_rx,
            sinks,
            chains,
            Arc::clone(&shared),
            config.batch_max,
        );
        let thread = std::thread::Builder::new()
            .name("cra-trace-flush".into())
            .spawn(move || worker.run())
            .map_err(|e| CoreError::Sink(format!("cannot start the flush thread: {e}")))?;
        Ok(Recorder {
            tx,
            wake,
            shared,
            overflow: config.overflow,
            algorithm: config.algorithm,
            capacity: config.capacity.max(1) as u64,
            queue_wait: config.queue_wait,
            thread: Mutex::new(Some(thread)),
        })
    }

    pub fn algorithm(&self) -> HashAlgorithm {
        self.algorithm
    }

    /// Reserves a place in the count before sending, so that `flush()` can
    /// never return before a record that was pushed ahead of it.
    /// Returns the count before this record.
    #[inline]
    fn reserve(&self, n: u64) -> Result<u64> {
        let c = &self.shared.counters;
        let before = c.recorded.fetch_add(n, Ordering::SeqCst);
        if self.shared.closing.load(Ordering::SeqCst) {
            c.recorded.fetch_sub(n, Ordering::SeqCst);
            return Err(CoreError::RecorderClosed);
        }
        Ok(before)
    }

    /// Looks at the queue's depth once every [`DEPTH_EVERY`] events: its
    /// length is read from the consumer's side of the queue, a cache line
    /// the flush thread keeps writing, and reading it on every push cost
    /// more than the rest of the push.
    #[inline]
    fn note_depth_sometimes(&self, before: u64, n: u64) {
        if before.div_ceil(DEPTH_EVERY) * DEPTH_EVERY < before + n {
            self.note_depth();
        }
    }

    #[inline]
    fn note_depth(&self) {
        let depth = self.tx.len() as u64;
        let hwm = &self.shared.counters.high_water;
        if depth > hwm.load(Ordering::Relaxed) {
            hwm.fetch_max(depth, Ordering::Relaxed);
        }
        // A filling queue wakes the (polling) flush thread, once.
        if depth * 2 > self.capacity && !self.shared.wake_sent.swap(true, Ordering::SeqCst) {
            let _ = self.wake.send(());
        }
    }

    /// Pushes without waiting.
    #[inline]
    pub fn try_push(&self, rec: Record) -> Result<Pushed> {
        let n = rec.event_count() as u64;
        let before = self.reserve(n)?;
        let c = &self.shared.counters;
        match self.tx.try_send(rec) {
            Ok(()) => {
                self.note_depth_sometimes(before, n);
                Ok(Pushed::Queued)
            }
            Err(TrySendError::Full(rec)) => {
                c.recorded.fetch_sub(n, Ordering::SeqCst);
                // A record that opens or closes a chain is never dropped:
                // without it every later event of the session is lost.
                if self.overflow == Overflow::Drop
                    && rec.start.is_none()
                    && !rec.ends_chain
                    && !matches!(rec.body, Body::Barrier(_))
                {
                    c.dropped.fetch_add(n, Ordering::Relaxed);
                    Ok(Pushed::Dropped)
                } else {
                    Ok(Pushed::Full(rec))
                }
            }
            Err(TrySendError::Disconnected(_)) => {
                c.recorded.fetch_sub(n, Ordering::SeqCst);
                Err(CoreError::RecorderClosed)
            }
        }
    }

    /// Pushes, waiting for room in the queue (at most `queue_wait`).
    pub fn push_blocking(&self, rec: Record) -> Result<()> {
        let n = rec.event_count() as u64;
        self.reserve(n)?;
        let sent = match self.queue_wait {
            None => self.tx.send(rec).map_err(|_| CoreError::RecorderClosed),
            Some(wait) => self.tx.send_timeout(rec, wait).map_err(|e| match e {
                SendTimeoutError::Timeout(_) => CoreError::TraceUnavailable(format!(
                    "the trace queue stayed full for {} ms",
                    wait.as_millis()
                )),
                SendTimeoutError::Disconnected(_) => CoreError::RecorderClosed,
            }),
        };
        if let Err(e) = sent {
            self.shared.counters.recorded.fetch_sub(n, Ordering::SeqCst);
            return Err(e);
        }
        self.note_depth();
        Ok(())
    }

    /// A commit ticket: a record with no events that the flush thread
    /// reports committed once everything pushed before it is written.
    /// Push it (it is never dropped), then [`Recorder::wait_committed`].
    /// It wakes the flush thread, so the wait is one batch, not a poll.
    pub fn barrier(&self) -> (u64, Record) {
        let ticket = self.shared.tickets.fetch_add(1, Ordering::SeqCst) + 1;
        let rec = Record {
            session_id: uuid::Uuid::nil(),
            span: crate::trace::chain::SpanRef::Root,
            micros: 0,
            body: Body::Barrier(ticket),
            start: None,
            ends_chain: false,
        };
        (ticket, rec)
    }

    /// Wakes the flush thread (once until it looks).
    pub fn wake(&self) {
        if !self.shared.wake_sent.swap(true, Ordering::SeqCst) {
            let _ = self.wake.send(());
        }
    }

    /// Waits until `ticket` is committed, the sinks fail, or `timeout`.
    pub fn wait_committed(&self, ticket: u64, timeout: Option<Duration>) -> Commit {
        // A commit is usually a few tens of microseconds away: poll for a
        // moment before sleeping (waking a sleeping thread costs as much).
        let spin = Instant::now();
        while spin.elapsed() < SPIN_AFTER_COMMIT {
            if self.shared.committed_fast.load(Ordering::Acquire) >= ticket {
                return Commit::Committed;
            }
            if self.shared.failing.load(Ordering::Relaxed) {
                break;
            }
            std::hint::spin_loop();
        }
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut state = self.shared.state.lock();
        loop {
            if state.committed >= ticket {
                return Commit::Committed;
            }
            if let Some(why) = &state.failing {
                return Commit::Failing(why.clone());
            }
            if state.finished {
                return Commit::Failing("the trace recorder is closed".into());
            }
            match deadline {
                Some(d) => {
                    if self.shared.changed.wait_until(&mut state, d).timed_out() {
                        return Commit::TimedOut;
                    }
                }
                None => self.shared.changed.wait(&mut state),
            }
        }
    }

    /// The highest committed ticket.
    pub fn committed(&self) -> u64 {
        self.shared.state.lock().committed
    }

    /// Why the sinks cannot write, while they cannot.
    pub fn failing(&self) -> Option<String> {
        if !self.shared.failing.load(Ordering::SeqCst) {
            return None;
        }
        self.shared.state.lock().failing.clone()
    }

    /// Sets the descriptor that commit notices are written to (-1: none).
    /// The caller owns it and keeps it open while it is set.
    pub fn set_notice_fd(&self, fd: i32) {
        self.shared.notice_fd.store(fd, Ordering::SeqCst);
    }

    /// Asks for one byte on the notice descriptor at the next commit or
    /// failure (after which it must be asked for again).
    pub fn want_notice(&self) {
        self.shared.notice_wanted.store(true, Ordering::SeqCst);
    }

    /// Why the trace cannot take events now, if it cannot: its sinks are
    /// failing, or its queue is at least `full_percent` full.
    pub fn unavailable(&self, full_percent: u64) -> Option<String> {
        if self.shared.failing.load(Ordering::Relaxed) {
            if let Some(why) = &self.shared.state.lock().failing {
                return Some(format!("the trace store cannot write: {why}"));
            }
        }
        let depth = self.tx.len() as u64;
        if depth * 100 >= self.capacity * full_percent {
            return Some(format!(
                "the trace queue is {}% full ({depth} of {} records)",
                depth * 100 / self.capacity,
                self.capacity
            ));
        }
        if self.shared.closing.load(Ordering::Relaxed) {
            return Some("the trace recorder is closed".into());
        }
        None
    }

    /// Pushes, waiting for room if the policy says so (no GIL concerns).
    pub fn push(&self, rec: Record) -> Result<()> {
        match self.try_push(rec)? {
            Pushed::Full(rec) => self.push_blocking(rec),
            _ => Ok(()),
        }
    }

    /// Waits until every record pushed before the call is written and
    /// synced. `Ok(false)` on timeout; a kept sink error is returned once.
    pub fn flush(&self, timeout: Option<Duration>) -> Result<bool> {
        let target = self.shared.counters.recorded.load(Ordering::SeqCst);
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut state = self.shared.state.lock();
        state.requested = state.requested.max(target);
        let _ = self.wake.send(());
        loop {
            if let Some(err) = state.error.take() {
                return Err(err);
            }
            let goal = target.min(self.shared.counters.recorded.load(Ordering::SeqCst));
            if state.synced >= goal {
                return Ok(true);
            }
            if state.finished {
                return Ok(false);
            }
            match deadline {
                Some(d) => {
                    if self.shared.changed.wait_until(&mut state, d).timed_out() {
                        return Ok(false);
                    }
                }
                None => self.shared.changed.wait(&mut state),
            }
        }
    }

    /// Refuses new records, flushes, and stops the flush thread.
    /// `Ok(false)` if the timeout passed before everything was written.
    pub fn close(&self, timeout: Option<Duration>) -> Result<bool> {
        self.close_then(timeout, true)
    }

    /// `close`, joining the flush thread only if `join`: a recorder dropped
    /// while its owner holds a lock the thread may need (the GIL, for a
    /// Python sink) must not wait for the thread to end.
    fn close_then(&self, timeout: Option<Duration>, join: bool) -> Result<bool> {
        self.shared.closing.store(true, Ordering::SeqCst);
        let done = self.flush(timeout)?;
        let _ = self.wake.send(());
        if done && join {
            if let Some(handle) = self.thread.lock().take() {
                let _ = handle.join();
            }
        }
        Ok(done)
    }

    pub fn is_closed(&self) -> bool {
        self.shared.closing.load(Ordering::SeqCst)
    }

    pub fn stats(&self) -> RecorderStats {
        let c = &self.shared.counters;
        RecorderStats {
            recorded: c.recorded.load(Ordering::SeqCst),
            sealed: c.sealed.load(Ordering::SeqCst),
            written: c.written.load(Ordering::SeqCst),
            dropped: c.dropped.load(Ordering::Relaxed),
            queue_depth: self.tx.len() as u64,
            // Pushes sample the depth; the queue as it is now counts too.
            high_water_mark: c
                .high_water
                .load(Ordering::Relaxed)
                .max(self.tx.len() as u64),
            sink_errors: c.sink_errors.load(Ordering::Relaxed),
            orphaned: c.orphaned.load(Ordering::Relaxed),
            repaired_bytes: c.repaired_bytes.load(Ordering::Relaxed),
        }
    }
}

impl Drop for Recorder {
    /// Flushes (at most 10 s) and lets the flush thread end by itself.
    fn drop(&mut self) {
        if !self.is_closed() {
            let _ = self.close_then(Some(Duration::from_secs(10)), false);
        }
    }
}

#[cfg(test)]
#[path = "recorder_tests.rs"]
mod tests;
