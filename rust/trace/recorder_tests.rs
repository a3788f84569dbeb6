//! The recorder with sinks the test controls: what `flush()` promises,
//! the drop policy on a full queue, a failing sink's retry, and close.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{bounded, Receiver, Sender};
use parking_lot::Mutex;
use uuid::Uuid;

use super::{Overflow, Pushed, Recorder, RecorderConfig};
use crate::error::{CoreError, Result};
use crate::trace::chain::{Body, ChainStart, Record, SpanRef};
use crate::trace::recorder_state::Commit;
use crate::trace::sink::{SealedBatch, Sink};

const SESSION: Uuid = Uuid::from_u128(7);
const NOW: i64 = 1_700_000_000_000_000;
const WAIT: Option<Duration> = Some(Duration::from_secs(10));

/// What a test sink saw, shared with the test.
#[derive(Default)]
struct Seen {
    /// `(sequence, event type)` of every event written, in order.
    events: Mutex<Vec<(u64, String)>>,
    attempts: AtomicUsize,
    syncs: AtomicUsize,
    /// Fails this many `write_batch` calls before it writes.
    fail: AtomicUsize,
}

impl Seen {
    fn sequences(&self) -> Vec<u64> {
        self.events.lock().iter().map(|(s, _)| *s).collect()
    }
}

struct TestSink {
    seen: Arc<Seen>,
    /// Blocks the first write: says it entered, waits for a release.
    gate: Option<(Sender<()>, Receiver<()>)>,
}

impl Sink for TestSink {
    fn write_batch(&mut self, events: &SealedBatch) -> Result<()> {
        if let Some((entered, release)) = self.gate.take() {
            entered.send(()).unwrap();
            release.recv().unwrap();
        }
        self.seen.attempts.fetch_add(1, Ordering::SeqCst);
        let fail = &self.seen.fail;
        if fail.load(Ordering::SeqCst) > 0 {
            fail.fetch_sub(1, Ordering::SeqCst);
            return Err(CoreError::Sink("disk full".into()));
        }
        self.seen.events.lock().extend(
            events
                .iter()
                .map(|e| (e.sequence, e.event_type.to_string())),
        );
        Ok(())
    }

    fn sync(&mut self) -> Result<()> {
        self.seen.syncs.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

fn sink() -> (Box<dyn Sink>, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let s = TestSink {
        seen: Arc::clone(&seen),
        gate: None,
    };
    (Box::new(s), seen)
}

/// A sink whose first write waits: `(sink, seen, entered, release)`.
fn gated_sink() -> (Box<dyn Sink>, Arc<Seen>, Receiver<()>, Sender<()>) {
    let seen = Arc::new(Seen::default());
    let (entered_tx, entered_rx) = bounded(1);
    let (release_tx, release_rx) = bounded(1);
    let s = TestSink {
        seen: Arc::clone(&seen),
        gate: Some((entered_tx, release_rx)),
    };
    (Box::new(s), seen, entered_rx, release_tx)
}

fn config(capacity: usize, overflow: Overflow) -> RecorderConfig {
    RecorderConfig {
        capacity,
        overflow,
        ..RecorderConfig::default()
    }
}

fn first() -> Record {
    Record {
        session_id: SESSION,
        span: SpanRef::Root,
        micros: NOW,
        body: Body::One("session.started".into(), "{}".into()),
        start: Some(Box::new(ChainStart {
            trace_id: Uuid::from_u128(8),
            root_span: Uuid::from_u128(9),
            next_sequence: 0,
            previous_hash: [0; 32],
        })),
        ends_chain: false,
    }
}

fn next() -> Record {
    Record {
        session_id: SESSION,
        span: SpanRef::Fresh,
        micros: NOW,
        body: Body::One("test.event".into(), "{}".into()),
        start: None,
        ends_chain: false,
    }
}

#[test]
fn flush_returns_after_every_earlier_record_is_written_and_synced() {
    let (s, seen) = sink();
    let rec = Recorder::start(config(4, Overflow::Block), vec![s]).unwrap();
    rec.push(first()).unwrap();
    for _ in 0..9 {
        rec.push(next()).unwrap();
    }
    assert!(rec.flush(WAIT).unwrap());
    assert_eq!(seen.sequences(), (0..10).collect::<Vec<u64>>());
    assert_eq!(
        seen.events.lock()[..2]
            .iter()
            .map(|(_, t)| t.as_str())
            .collect::<Vec<_>>(),
        vec!["session.started", "test.event"]
    );
    assert!(seen.syncs.load(Ordering::SeqCst) >= 1);
    let stats = rec.stats();
    assert_eq!(
        (
            stats.recorded,
            stats.written,
            stats.dropped,
            stats.sink_errors
        ),
        (10, 10, 0, 0)
    );
    rec.close(WAIT).unwrap();
}

#[test]
fn the_drop_policy_counts_what_a_full_queue_drops() {
    let (s, seen, entered, release) = gated_sink();
    let rec = Recorder::start(config(2, Overflow::Drop), vec![s]).unwrap();
    rec.push(first()).unwrap();
    // The flush thread holds the first record inside the sink.
    entered.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(matches!(rec.try_push(next()).unwrap(), Pushed::Queued));
    assert!(matches!(rec.try_push(next()).unwrap(), Pushed::Queued));
    assert!(matches!(rec.try_push(next()).unwrap(), Pushed::Dropped));
    rec.push(next()).unwrap(); // dropped as well
                               // A chain's last record is never dropped: it has to wait.
    let mut last = next();
    last.ends_chain = true;
    assert!(matches!(rec.try_push(last).unwrap(), Pushed::Full(_)));
    let stats = rec.stats();
    assert_eq!(
        (stats.recorded, stats.dropped, stats.queue_depth),
        (3, 2, 2)
    );
    release.send(()).unwrap();
    assert!(rec.flush(WAIT).unwrap());
    assert_eq!(seen.sequences(), vec![0, 1, 2]);
    let stats = rec.stats();
    assert_eq!((stats.written, stats.dropped), (3, 2));
    rec.close(WAIT).unwrap();
}

#[test]
fn a_failing_sink_reports_once_and_retries_without_rewriting_earlier_sinks() {
    let (a, seen_a) = sink();
    let (b, seen_b) = sink();
    seen_b.fail.store(1, Ordering::SeqCst);
    let rec = Recorder::start(config(8, Overflow::Block), vec![a, b]).unwrap();
    rec.push(first()).unwrap();
    rec.push(next()).unwrap();
    rec.push(next()).unwrap();
    let err = rec.flush(WAIT).unwrap_err();
    assert_eq!(err.code(), "TRACE_SINK_FAILED");
    assert!(
        matches!(&err, CoreError::Sink(m) if m == "disk full"),
        "{err:?}"
    );
    // The error was reported once; the retry wrote the batch.
    assert!(rec.flush(WAIT).unwrap());
    assert_eq!(seen_a.sequences(), vec![0, 1, 2]);
    assert_eq!(seen_b.sequences(), vec![0, 1, 2]);
    let a_attempts = seen_a.attempts.load(Ordering::SeqCst);
    let b_attempts = seen_b.attempts.load(Ordering::SeqCst);
    // `b` was tried once more than `a`: the failed batch went to `a` once.
    assert_eq!(b_attempts, a_attempts + 1);
    let stats = rec.stats();
    assert_eq!((stats.written, stats.sink_errors), (3, 1));
    assert!(rec.flush(WAIT).unwrap());
    rec.close(WAIT).unwrap();
}

#[test]
fn after_close_a_push_is_refused() {
    let (s, seen) = sink();
    let rec = Recorder::start(config(2, Overflow::Block), vec![s]).unwrap();
    rec.push(first()).unwrap();
    assert!(rec.close(WAIT).unwrap());
    assert!(rec.is_closed());
    assert_eq!(seen.sequences(), vec![0]);
    let err = rec.push(next()).unwrap_err();
    assert!(matches!(err, CoreError::RecorderClosed), "{err:?}");
    assert_eq!(err.code(), "RECORDER_CLOSED");
    assert!(matches!(
        rec.try_push(next()),
        Err(CoreError::RecorderClosed)
    ));
    assert!(matches!(
        rec.push_blocking(next()),
        Err(CoreError::RecorderClosed)
    ));
    let stats = rec.stats();
    assert_eq!((stats.recorded, stats.written), (1, 1));
    assert!(rec.flush(WAIT).unwrap());
    assert_eq!(seen.sequences(), vec![0]);
}

/// Pushes a commit ticket, as the runtime does.
fn ticket(rec: &Recorder) -> u64 {
    let (t, barrier) = rec.barrier();
    rec.push(barrier).unwrap();
    rec.wake();
    t
}

#[test]
fn a_ticket_is_committed_only_after_every_earlier_record_is_written() {
    let (s, seen, entered, release) = gated_sink();
    let rec = Recorder::start(RecorderConfig::default(), vec![s]).unwrap();
    rec.push(first()).unwrap();
    entered.recv().unwrap(); // the flush thread holds `first` in a write
    rec.push(next()).unwrap();
    let t = ticket(&rec);
    assert_eq!(
        rec.wait_committed(t, Some(Duration::from_millis(50))),
        Commit::TimedOut
    );
    release.send(()).unwrap();
    assert_eq!(rec.wait_committed(t, WAIT), Commit::Committed);
    // Without any flush(): both records are written when the ticket is.
    assert_eq!(seen.sequences(), vec![0, 1]);
    assert!(rec.committed() >= t);
}

#[test]
fn a_failing_sink_fails_the_waiters_and_clears_when_it_writes_again() {
    let (s, seen) = sink();
    seen.fail.store(3, Ordering::SeqCst);
    let rec = Recorder::start(RecorderConfig::default(), vec![s]).unwrap();
    rec.push(first()).unwrap();
    let t = ticket(&rec);
    match rec.wait_committed(t, WAIT) {
        Commit::Failing(why) => assert!(why.contains("disk full"), "{why}"),
        other => panic!("expected Failing, got {other:?}"),
    }
    assert!(rec.unavailable(90).unwrap().contains("disk full"));
    // The batch is retried; once it is written the failure clears.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while rec.committed() < t {
        assert!(std::time::Instant::now() < deadline, "never recovered");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(rec.unavailable(90), None);
    assert_eq!(seen.sequences(), vec![0]);
}

#[test]
fn a_full_queue_waits_at_most_queue_wait_then_is_unavailable() {
    let (s, _seen, entered, release) = gated_sink();
    let config = RecorderConfig {
        capacity: 1,
        queue_wait: Some(Duration::from_millis(20)),
        ..RecorderConfig::default()
    };
    let rec = Recorder::start(config, vec![s]).unwrap();
    rec.push(first()).unwrap();
    entered.recv().unwrap();
    rec.push(next()).unwrap(); // fills the queue
    let err = rec.push(next()).unwrap_err();
    assert_eq!(err.code(), "TRACE_UNAVAILABLE");
    assert!(rec.unavailable(90).unwrap().contains("full"));
    release.send(()).unwrap();
    assert!(rec.flush(WAIT).unwrap());
}

#[test]
fn a_ticket_is_never_dropped_by_the_drop_policy() {
    let (s, _seen, entered, release) = gated_sink();
    let rec = Recorder::start(config(1, Overflow::Drop), vec![s]).unwrap();
    rec.push(first()).unwrap();
    entered.recv().unwrap();
    rec.push(next()).unwrap();
    let (t, barrier) = rec.barrier();
    assert!(matches!(rec.try_push(barrier).unwrap(), Pushed::Full(_)));
    release.send(()).unwrap();
    let (t2, barrier) = rec.barrier();
    rec.push(barrier).unwrap();
    rec.wake();
    assert_eq!(rec.wait_committed(t2.max(t), WAIT), Commit::Committed);
}
