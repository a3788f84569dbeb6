//! The PostgreSQL store as the flush thread's sink and the chains'
//! authority. One batch is one transaction: the rows of its sessions are
//! locked (`FOR UPDATE`, in id order, so two writers never deadlock), each
//! session's events are checked to continue the stored chain, and a
//! session whose stored head moved (another replica wrote to it meanwhile)
//! has its events of this batch re-sealed onto that head: new sequence
//! numbers, links and hashes. Then the events go in by `COPY` and the rows
//! are updated. Two replicas writing one session therefore serialize on
//! its row, and its chain never forks.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use postgres::{Client, Row, Transaction};
use rusqlite::types::Value;

use crate::error::Result;
use crate::pg::db::{fail, SharedPg};
use crate::pg::shared::{Doc, PendingDocs};
use crate::sqlite::event::StoreEvent;
use crate::sqlite::rows::{apply_batch, SessionRow};
use crate::time::Clock;
use crate::trace::event::TraceEvent;
use crate::trace::hash::{from_hex, to_hex, HashAlgorithm};
use crate::trace::sink::{SealedBatch, Sink, SinkFactory};

/// The columns of `cra_sessions`, in table order (as `SessionRow`).
pub const COLUMNS: &str = "session_id, trace_id, root_span_id, agent_id, goal, status, \
    started_at, ended_at, event_count, first_sequence, anchor_hash, last_sequence, last_hash";

pub struct PgSinkFactory {
    pub db: SharedPg,
    /// Resolution documents to write with the next batch.
    pub docs: Arc<PendingDocs>,
}

impl SinkFactory for PgSinkFactory {
    fn open(&self) -> Result<Box<dyn Sink>> {
        Ok(Box::new(PgSink {
            db: Arc::clone(&self.db),
            docs: Arc::clone(&self.docs),
            client: Some(self.db.connect()?),
            swept: Instant::now(),
        }))
    }

    fn assigns_chain(&self) -> bool {
        true
    }
}

struct PgSink {
    db: SharedPg,
    docs: Arc<PendingDocs>,
    /// When expired resolutions and approvals were last deleted.
    swept: Instant,
    /// None after a failure: the next batch connects again.
    client: Option<Client>,
}

impl Sink for PgSink {
    fn write_batch(&mut self, events: &SealedBatch) -> Result<()> {
        self.write_chained(events).map(|_| ())
    }

    fn write_chained(&mut self, events: &SealedBatch) -> Result<Option<Vec<Arc<TraceEvent>>>> {
        if events.is_empty() {
            return Ok(None);
        }
        let mut client = match self.client.take() {
            Some(c) if !c.is_closed() => c,
            _ => self.db.connect()?,
        };
        let docs = self.docs.take();
        let written = write(&mut client, events, &docs);
        if written.is_err() {
            self.docs.restore(docs);
        } else if self.swept.elapsed() >= SWEEP_EVERY {
            self.swept = Instant::now();
            // Best effort: what is not deleted now is deleted next time.
            let _ = sweep(&mut client);
        }
        self.client = Some(client);
        written.map_err(|e| {
            self.client = None;
            match e {
                Fault::Pg(e) => fail(self.db.dsn(), &e),
                Fault::Core(e) => e,
            }
        })
    }
}

enum Fault {
    Pg(postgres::Error),
    Core(crate::error::CoreError),
}

impl From<postgres::Error> for Fault {
    fn from(e: postgres::Error) -> Self {
        Fault::Pg(e)
    }
}

fn write(
    client: &mut Client,
    events: &SealedBatch,
    docs: &[Doc],
) -> std::result::Result<Option<Vec<Arc<TraceEvent>>>, Fault> {
    let mut tx = client.transaction()?;
    PendingDocs::write(&mut tx, docs)?;
    let mut ids: Vec<String> = events.iter().map(|e| e.session_id.to_string()).collect();
    ids.sort();
    ids.dedup();
    let rows: HashMap<String, SessionRow> = tx
        .query(
            &format!(
                "SELECT {COLUMNS} FROM cra_sessions WHERE session_id = ANY($1) \
                 ORDER BY session_id FOR UPDATE"
            ),
            &[&ids],
        )?
        .iter()
        .map(|r| {
            let row = row_of(r);
            (row.session_id.clone(), row)
        })
        .collect();
    // A batch whose commit went through but whose answer was lost (the
    // connection broke on the way back) is retried: it is stored already,
    // whole, if its first event's id is among the batches written. Written
    // again it would be re-sealed after itself.
    let first = events[0].event_id.to_string();
    let stored_before = tx.execute(
        "INSERT INTO cra_batches (first_event_id) VALUES ($1) ON CONFLICT DO NOTHING",
        &[&first],
    )? == 0;
    if stored_before {
        tx.commit()?; // the resolution documents, if any (kept if present)
        return Ok(None);
    }
    let resealed = reseal(events, &rows);
    let batch: &[Arc<TraceEvent>] = resealed.as_deref().unwrap_or(events);
    let stored: Vec<StoreEvent> = batch.iter().map(StoreEvent::sealed).collect();
    let after = apply_batch(&stored, |sid| Ok(rows.get(sid).cloned()))
        .map_err(|e| Fault::Core(e.into()))?;
    copy_events(&mut tx, &stored)?;
    upsert(&mut tx, &after)?;
    tx.commit()?;
    Ok(resealed)
}

/// How often expired resolutions and approvals are deleted, and how long
/// after their expiry (an execute naming one late still hears "expired").
const SWEEP_EVERY: Duration = Duration::from_secs(60);
const KEEP_EXPIRED_MICROS: i64 = 3_600 * 1_000_000;

fn sweep(client: &mut Client) -> std::result::Result<(), postgres::Error> {
    let before = crate::time::SystemClock.now_micros() - KEEP_EXPIRED_MICROS;
    client.execute(
        "DELETE FROM cra_resolutions WHERE expires_at < $1",
        &[&before],
    )?;
    client.execute(
        "DELETE FROM cra_approvals WHERE expires_at < $1",
        &[&before],
    )?;
    // A batch is retried within seconds; a day of them is plenty to know.
    client.execute(
        "DELETE FROM cra_batches WHERE written_at < now() - interval '1 day'",
        &[],
    )?;
    Ok(())
}

/// The batch re-sealed where a session's stored head is not where its
/// first event of the batch continues from; None if every chain continues.
fn reseal(
    events: &SealedBatch,
    rows: &HashMap<String, SessionRow>,
) -> Option<Vec<Arc<TraceEvent>>> {
    // Each moved session's next sequence and link, as the store has them.
    let mut heads: HashMap<uuid::Uuid, (u64, [u8; 32])> = HashMap::new();
    let mut checked: std::collections::HashSet<uuid::Uuid> = Default::default();
    for e in events.iter() {
        if !checked.insert(e.session_id) {
            continue;
        }
        let Some(row) = rows.get(&e.session_id.to_string()) else {
            continue;
        };
        let (Value::Integer(last), Value::Text(hash)) = (&row.last_sequence, &row.last_hash) else {
            continue;
        };
        let Some(link) = from_hex(hash) else { continue };
        let next = (*last + 1) as u64;
        if e.sequence != next || e.previous_event_hash != link {
            heads.insert(e.session_id, (next, link));
        }
    }
    if heads.is_empty() {
        return None;
    }
    let out = events
        .iter()
        .map(|e| match heads.get_mut(&e.session_id) {
            None => Arc::clone(e),
            Some((next, link)) => {
                let mut moved = TraceEvent::clone(e);
                let algorithm = algorithm_of(e);
                moved.sequence = *next;
                moved.previous_event_hash = *link;
                moved.event_hash = moved.compute_hash(algorithm);
                *next += 1;
                *link = moved.event_hash;
                Arc::new(moved)
            }
        })
        .collect();
    Some(out)
}

/// The algorithm that sealed `e` (the runtime's; the store is told none).
fn algorithm_of(e: &TraceEvent) -> HashAlgorithm {
    if e.compute_hash(HashAlgorithm::Sha256) == e.event_hash {
        HashAlgorithm::Sha256
    } else {
        HashAlgorithm::Blake3
    }
}

/// The events into `cra_events` by one `COPY` (text format).
fn copy_events(tx: &mut Transaction<'_>, events: &[StoreEvent]) -> std::result::Result<(), Fault> {
    let mut data = String::with_capacity(events.iter().map(|e| e.text.len() + 64).sum());
    for e in events {
        escape_into(&mut data, &e.session_id);
        data.push('\t');
        data.push_str(itoa::Buffer::new().format(e.sequence));
        data.push('\t');
        escape_into(&mut data, &e.event_type);
        data.push('\t');
        escape_into(&mut data, &e.text);
        data.push('\n');
    }
    let mut w =
        tx.copy_in("COPY cra_events (session_id, sequence, event_type, line) FROM STDIN")?;
    w.write_all(data.as_bytes())
        .map_err(|e| Fault::Core(crate::error::CoreError::Sink(e.to_string())))?;
    w.finish()?;
    Ok(())
}

/// A value in COPY's text format: backslash, tab, newline and carriage
/// return escaped.
pub fn escape_into(out: &mut String, text: &str) {
    for ch in text.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\0' => out.push('\u{FFFD}'), // no PostgreSQL text holds a NUL
            c => out.push(c),
        }
    }
}

/// The batch's session rows, inserted or updated in one statement (one
/// array per column).
fn upsert(
    tx: &mut Transaction<'_>,
    rows: &[(SessionRow, Vec<usize>)],
) -> std::result::Result<(), postgres::Error> {
    let zeros = to_hex(&[0; 32]);
    let texts = |f: &dyn Fn(&SessionRow) -> &Value| -> Vec<Option<String>> {
        rows.iter().map(|(r, _)| text_of(f(r))).collect()
    };
    let ids: Vec<&str> = rows.iter().map(|(r, _)| r.session_id.as_str()).collect();
    let status: Vec<String> = rows
        .iter()
        .map(|(r, _)| text_of(&r.status).unwrap_or_else(|| "active".into()))
        .collect();
    let counts: Vec<i64> = rows.iter().map(|(r, _)| r.event_count).collect();
    let firsts: Vec<i64> = rows
        .iter()
        .map(|(r, _)| int_of(&r.first_sequence).unwrap_or(0))
        .collect();
    let anchors: Vec<String> = rows
        .iter()
        .map(|(r, _)| text_of(&r.anchor_hash).unwrap_or_else(|| zeros.clone()))
        .collect();
    let lasts: Vec<i64> = rows
        .iter()
        .map(|(r, _)| int_of(&r.last_sequence).unwrap_or(-1))
        .collect();
    let hashes: Vec<String> = rows
        .iter()
        .map(|(r, _)| text_of(&r.last_hash).unwrap_or_else(|| zeros.clone()))
        .collect();
    tx.execute(
        &format!(
            "INSERT INTO cra_sessions ({COLUMNS}) SELECT * FROM unnest(\
             $1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], \
             $7::text[], $8::text[], $9::int8[], $10::int8[], $11::text[], $12::int8[], \
             $13::text[]) \
             ON CONFLICT (session_id) DO UPDATE SET trace_id = EXCLUDED.trace_id, \
             root_span_id = EXCLUDED.root_span_id, agent_id = EXCLUDED.agent_id, \
             goal = EXCLUDED.goal, status = EXCLUDED.status, started_at = EXCLUDED.started_at, \
             ended_at = EXCLUDED.ended_at, event_count = EXCLUDED.event_count, \
             first_sequence = EXCLUDED.first_sequence, anchor_hash = EXCLUDED.anchor_hash, \
             last_sequence = EXCLUDED.last_sequence, last_hash = EXCLUDED.last_hash"
        ),
        &[
            &ids,
            &texts(&|r| &r.trace_id),
            &texts(&|r| &r.root_span_id),
            &texts(&|r| &r.agent_id),
            &texts(&|r| &r.goal),
            &status,
            &texts(&|r| &r.started_at),
            &texts(&|r| &r.ended_at),
            &counts,
            &firsts,
            &anchors,
            &lasts,
            &hashes,
        ],
    )?;
    Ok(())
}

/// A row value as text. A NUL (which no PostgreSQL text holds) becomes
/// U+FFFD: the row is an index, the event's own line keeps the exact value,
/// and one odd value must never stop the store from writing.
fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::Text(s) if s.contains('\0') => Some(s.replace('\0', "\u{FFFD}")),
        Value::Text(s) => Some(s.clone()),
        Value::Integer(i) => Some(i.to_string()),
        Value::Real(f) => Some(f.to_string()),
        _ => None,
    }
}

fn int_of(v: &Value) -> Option<i64> {
    match v {
        Value::Integer(i) => Some(*i),
        _ => None,
    }
}

/// A `cra_sessions` row (columns in `COLUMNS` order) as the core's row.
pub fn row_of(r: &Row) -> SessionRow {
    let t = |i: usize| {
        r.get::<_, Option<String>>(i)
            .map_or(Value::Null, Value::Text)
    };
    let n = |i: usize| Value::Integer(r.get::<_, i64>(i));
    SessionRow {
        session_id: r.get(0),
        trace_id: t(1),
        root_span_id: t(2),
        agent_id: t(3),
        goal: t(4),
        status: t(5),
        started_at: t(6),
        ended_at: t(7),
        event_count: r.get(8),
        first_sequence: n(9),
        anchor_hash: t(10),
        last_sequence: n(11),
        last_hash: t(12),
    }
}

#[cfg(test)]
mod tests {
    use super::escape_into;

    #[test]
    fn copy_text_escapes_its_delimiters() {
        let mut out = String::new();
        escape_into(&mut out, "a\tb\nc\\d\re");
        assert_eq!(out, "a\\tb\\nc\\\\d\\re");
    }
}
