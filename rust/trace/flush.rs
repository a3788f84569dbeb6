//! The flush thread: takes records off the queue, seals them into chains
//! (with signed checkpoints when configured), writes each batch to every
//! sink, retries a failing sink, syncs when a `flush()` waits, and
//! publishes commits and failures to whoever waits for them.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use crate::error::{CoreError, Result};
use crate::time::{Clock, SystemClock};
use crate::trace::chain::{Body, Chains, Record};
use crate::trace::event::TraceEvent;
use crate::trace::recorder_state::{Shared, SPIN_AFTER_COMMIT};
use crate::trace::sink::Sink;

/// The flush thread's own state.
pub(crate) struct FlushThread {
    rx: Receiver<Record>,
    wake: Receiver<()>,
    sinks: Vec<Box<dyn Sink>>,
    chains: Chains,
    shared: Arc<Shared>,
    batch_max: usize,
    /// When (µs) to look for time-due checkpoints next.
    next_checkpoint_check: i64,
}

/// How often the flush thread looks for checkpoints due by time.
const CHECKPOINT_CHECK_MICROS: i64 = 100_000;

const IDLE_MIN: Duration = Duration::from_millis(1);
const IDLE_MAX: Duration = Duration::from_millis(20);
const RETRY_MIN: Duration = Duration::from_millis(5);
const RETRY_MAX: Duration = Duration::from_millis(500);

impl FlushThread {
    pub(crate) fn new(
        rx: Receiver<Record>,
        wake: Receiver<()>,
        sinks: Vec<Box<dyn Sink>>,
        chains: Chains,
        shared: Arc<Shared>,
        batch_max: usize,
    ) -> Self {
        FlushThread {
            rx,
            wake,
            sinks,
            chains,
            shared,
            batch_max: batch_max.max(1),
            next_checkpoint_check: 0,
        }
    }

    pub(crate) fn run(mut self) {
        let mut pending: Vec<Arc<TraceEvent>> = Vec::with_capacity(self.batch_max);
        let mut done_sinks = vec![false; self.sinks.len()];
        let mut backoff = RETRY_MIN;
        let mut idle = IDLE_MIN;
        // The highest commit ticket among the records in `pending`.
        let mut ticket = 0u64;
        // When a batch with a ticket was last written (a caller waits for
        // commits and will likely push again at once).
        let mut last_ticket: Option<Instant> = None;
        loop {
            if pending.is_empty() {
                // Producers never wake this thread (a futex wake per push
                // would cost every caller microseconds): it polls, backing
                // off while idle, and is woken by flush()/close() or by a
                // queue filling past half.
                let first = match self.rx.try_recv() {
                    Ok(rec) => Some(rec),
                    Err(_) if self.spin_after_ticket(last_ticket) => self.rx.try_recv().ok(),
                    Err(_) => {
                        let _ = self.wake.recv_timeout(idle);
                        self.shared.wake_sent.store(false, Ordering::SeqCst);
                        idle = (idle * 2).min(IDLE_MAX);
                        self.rx.try_recv().ok()
                    }
                };
                if let Some(rec) = first {
                    idle = IDLE_MIN;
                    self.seal(rec, &mut pending, &mut ticket);
                }
                while pending.len() < self.batch_max {
                    match self.rx.try_recv() {
                        Ok(rec) => self.seal(rec, &mut pending, &mut ticket),
                        Err(_) => break,
                    }
                }
                if self.chains.signs() {
                    self.checkpoint_if_due(&mut pending);
                }
                let n = pending.len() as u64;
                self.shared.counters.sealed.fetch_add(n, Ordering::SeqCst);
                if pending.is_empty() && ticket > 0 {
                    // Only tickets: everything before them is written.
                    self.commit(std::mem::take(&mut ticket));
                }
            }
            if !pending.is_empty() {
                if let Err(err) = self.write(&mut pending, &mut done_sinks) {
                    self.fail(err);
                    let _ = self.wake.recv_timeout(backoff);
                    backoff = (backoff * 2).min(RETRY_MAX);
                    continue;
                }
                backoff = RETRY_MIN;
                done_sinks.iter_mut().for_each(|d| *d = false);
                let n = pending.len() as u64;
                pending.clear();
                self.shared.counters.written.fetch_add(n, Ordering::SeqCst);
                if ticket > 0 || self.shared.failing.load(Ordering::Relaxed) {
                    if ticket > 0 {
                        last_ticket = Some(Instant::now());
                    }
                    self.commit(std::mem::take(&mut ticket));
                }
            }
            if let Some(err) = self.sync_if_asked() {
                self.fail(err);
                let _ = self.wake.recv_timeout(backoff);
                continue;
            }
            if self.shared.closing.load(Ordering::SeqCst) && self.all_written() {
                let mut state = self.shared.state.lock();
                state.finished = true;
                self.shared.changed.notify_all();
                return;
            }
        }
    }

    /// Right after a commit someone waited for, polls the queue for a
    /// moment instead of sleeping: waking a sleeping thread costs a
    /// sync caller tens of microseconds on a virtual machine. True if a
    /// record arrived while spinning.
    fn spin_after_ticket(&self, last: Option<Instant>) -> bool {
        let Some(at) = last else { return false };
        while at.elapsed() < SPIN_AFTER_COMMIT {
            if !self.rx.is_empty() {
                return true;
            }
            std::hint::spin_loop();
        }
        false
    }

    /// Seals checkpoints that are due: for every open session with new
    /// events when a `flush()` waits (or the recorder closes), else for
    /// those whose last checkpoint is older than the policy's interval.
    /// Their events are counted as recorded here, so `flush()` waits for
    /// them too.
    fn checkpoint_if_due(&mut self, pending: &mut Vec<Arc<TraceEvent>>) {
        let now = SystemClock.now_micros();
        let closing = self.shared.closing.load(Ordering::SeqCst);
        let flushing = {
            let state = self.shared.state.lock();
            state.requested > state.synced
        };
        if !flushing && !closing && now < self.next_checkpoint_check {
            return;
        }
        self.next_checkpoint_check = now + CHECKPOINT_CHECK_MICROS;
        let n = self.chains.checkpoint_open(now, flushing, closing, pending) as u64;
        if n > 0 {
            let c = &self.shared.counters;
            c.recorded.fetch_add(n, Ordering::SeqCst);
            let mut state = self.shared.state.lock();
            state.requested = state.requested.max(c.recorded.load(Ordering::SeqCst));
        }
    }

    fn seal(&mut self, rec: Record, pending: &mut Vec<Arc<TraceEvent>>, ticket: &mut u64) {
        if let Body::Barrier(t) = rec.body {
            *ticket = (*ticket).max(t);
            return;
        }
        let n = rec.event_count() as u64;
        let sealed = self.chains.seal(rec, pending);
        if sealed as u64 > n {
            // Checkpoints the chain added: recorded here, by the thread.
            let extra = sealed as u64 - n;
            self.shared
                .counters
                .recorded
                .fetch_add(extra, Ordering::SeqCst);
        }
        if sealed == 0 && n > 0 {
            // A record for a session without a chain: the runtime never
            // sends one; count it so that `flush()` still completes.
            let c = &self.shared.counters;
            c.orphaned.fetch_add(n, Ordering::Relaxed);
            c.written.fetch_add(n, Ordering::SeqCst);
        }
    }

    /// Writes the batch to every sink not yet done with it. A sink that
    /// re-seals it (the chains' authority, always first) hands the batch
    /// as it stored it to the others, and the chains continue from there.
    fn write(&mut self, batch: &mut Vec<Arc<TraceEvent>>, done: &mut [bool]) -> Result<()> {
        for (sink, done) in self.sinks.iter_mut().zip(done.iter_mut()) {
            if !*done {
                if let Some(resealed) = sink.write_chained(batch)? {
                    self.chains.follow(&resealed);
                    *batch = resealed;
                }
                *done = true;
            }
        }
        Ok(())
    }

    fn all_written(&self) -> bool {
        let c = &self.shared.counters;
        self.rx.is_empty() && c.written.load(Ordering::SeqCst) >= c.recorded.load(Ordering::SeqCst)
    }

    /// Syncs the sinks when a `flush()` waits and its records are written.
    fn sync_if_asked(&mut self) -> Option<CoreError> {
        let written = self.shared.counters.written.load(Ordering::SeqCst);
        let requested = {
            let state = self.shared.state.lock();
            if state.synced >= state.requested.min(written)
                && !self.shared.closing.load(Ordering::SeqCst)
            {
                return None;
            }
            state.requested
        };
        if written < requested && !self.rx.is_empty() {
            return None; // more to write first
        }
        for sink in &mut self.sinks {
            if let Err(e) = sink.sync() {
                return Some(e);
            }
        }
        let mut state = self.shared.state.lock();
        state.synced = state.synced.max(written);
        self.shared.changed.notify_all();
        None
    }

    /// Publishes that everything up to `ticket` is written and that the
    /// sinks write again.
    fn commit(&self, ticket: u64) {
        {
            let mut state = self.shared.state.lock();
            state.committed = state.committed.max(ticket);
            self.shared
                .committed_fast
                .store(state.committed, Ordering::Release);
            state.failing = None;
            self.shared.failing.store(false, Ordering::Relaxed);
            self.shared.changed.notify_all();
        }
        self.notice();
    }

    /// Writes one byte to the notice descriptor if one was asked for.
    fn notice(&self) {
        if !self.shared.notice_wanted.swap(false, Ordering::SeqCst) {
            return;
        }
        let fd = self.shared.notice_fd.load(Ordering::SeqCst);
        #[cfg(unix)]
        if fd >= 0 {
            use std::io::Write;
            use std::os::unix::io::FromRawFd;
            // SAFETY: the owner keeps `fd` open while it is set; the File
            // is never dropped, so it does not close it.
            let mut pipe = std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(fd) });
            let _ = pipe.write(b"c"); // a full pipe already wakes its reader
        }
        #[cfg(not(unix))]
        let _ = fd;
    }

    fn fail(&self, err: CoreError) {
        self.shared
            .counters
            .sink_errors
            .fetch_add(1, Ordering::Relaxed);
        let mut state = self.shared.state.lock();
        state.failing = Some(err.message());
        self.shared.failing.store(true, Ordering::SeqCst);
        state.error = Some(err);
        self.shared.changed.notify_all();
        drop(state);
        self.notice();
    }
}
