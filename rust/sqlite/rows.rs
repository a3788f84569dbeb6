//! The `sessions` table's rows and what a batch does to them: the one
//! home of these rules. The SQLite writer (`sqlite::store`) applies them to
//! the rows it reads from its file; the memory and JSON Lines stores to
//! the rows they keep in Python (`cra._core.apply_session_rows`, through
//! [`apply_batch`]), so that every store describes a session alike.

use rusqlite::types::Value;

use crate::sqlite::error::SqliteResult;
use crate::sqlite::event::{RowFields, StoreEvent};

/// The hash a chain starts from.
pub const ZEROS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One row of `sessions`, columns in table order. Columns the rules only
/// copy keep whatever SQLite value they hold.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRow {
    pub session_id: String,
    pub trace_id: Value,
    pub root_span_id: Value,
    pub agent_id: Value,
    pub goal: Value,
    pub status: Value,
    pub started_at: Value,
    pub ended_at: Value,
    pub event_count: i64,
    pub first_sequence: Value,
    pub anchor_hash: Value,
    pub last_sequence: Value,
    pub last_hash: Value,
}

fn text(s: &str) -> Value {
    Value::Text(s.to_string())
}

impl SessionRow {
    /// The row of a session the store has not seen: active, no events.
    pub fn new(session_id: &str, trace_id: Value) -> Self {
        SessionRow {
            session_id: session_id.to_string(),
            trace_id,
            root_span_id: Value::Null,
            agent_id: Value::Null,
            goal: Value::Null,
            status: text("active"),
            started_at: Value::Null,
            ended_at: Value::Null,
            event_count: 0,
            first_sequence: Value::Integer(0),
            anchor_hash: text(ZEROS),
            last_sequence: Value::Integer(-1),
            last_hash: text(ZEROS),
        }
    }

    /// A row as read from `sessions` (columns in table order).
    pub fn from_sql(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(SessionRow {
            session_id: r.get(0)?,
            trace_id: r.get(1)?,
            root_span_id: r.get(2)?,
            agent_id: r.get(3)?,
            goal: r.get(4)?,
            status: r.get(5)?,
            started_at: r.get(6)?,
            ended_at: r.get(7)?,
            event_count: r.get(8)?,
            first_sequence: r.get(9)?,
            anchor_hash: r.get(10)?,
            last_sequence: r.get(11)?,
            last_hash: r.get(12)?,
        })
    }

    /// The row's values in table order, to bind.
    pub fn to_sql(&self) -> [Value; 13] {
        [
            text(&self.session_id),
            self.trace_id.clone(),
            self.root_span_id.clone(),
            self.agent_id.clone(),
            self.goal.clone(),
            self.status.clone(),
            self.started_at.clone(),
            self.ended_at.clone(),
            Value::Integer(self.event_count),
            self.first_sequence.clone(),
            self.anchor_hash.clone(),
            self.last_sequence.clone(),
            self.last_hash.clone(),
        ]
    }

    /// What an event changes besides the counters (`Store._apply_fields`).
    pub fn apply_fields(&mut self, event_type: &str, f: RowFields) {
        match event_type {
            "session.started" => {
                self.root_span_id = f.span_id;
                self.agent_id = f.agent_id;
                self.goal = f.goal;
                self.started_at = f.timestamp.clone();
            }
            "session.ended" => {
                self.status = text("ended");
                self.ended_at = f.timestamp.clone();
            }
            _ => {}
        }
        if self.started_at == Value::Null {
            self.started_at = f.timestamp;
        }
    }
}

/// Event types that change more of a row than its counters.
pub fn is_row_event(event_type: &str) -> bool {
    matches!(event_type, "session.started" | "session.ended")
}

/// A batch's events by session, sessions in order of first appearance,
/// each with the positions of its events in batch order.
pub fn by_session(events: &[StoreEvent]) -> Vec<(&str, Vec<usize>)> {
    let mut out: Vec<(&str, Vec<usize>)> = Vec::new();
    let Some(first) = events.first() else {
        return out;
    };
    if events.iter().all(|e| e.session_id == first.session_id) {
        out.push((&first.session_id, (0..events.len()).collect()));
        return out;
    }
    let mut index: std::collections::HashMap<&str, usize> = Default::default();
    for (i, e) in events.iter().enumerate() {
        let at = *index.entry(&e.session_id).or_insert_with(|| {
            out.push((&e.session_id, Vec::new()));
            out.len() - 1
        });
        out[at].1.push(i);
    }
    out
}

/// Applies one session's events of a batch to its row, in order
/// (`Store._apply_scanned`): `session.started`/`session.ended` change the
/// row's fields, the session's first event of the batch sets `started_at`
/// if the row has none, and the counters and the last hash are set once.
/// `special` says whether the batch has any row event at all (if not, only
/// the first event is looked at).
pub fn apply(
    row: &mut SessionRow,
    events: &[StoreEvent],
    at: &[usize],
    special: bool,
) -> SqliteResult<()> {
    let Some((&first, &last)) = at.first().zip(at.last()) else {
        return Ok(());
    };
    let looked_at = if special { at } else { &at[..1] };
    for &i in looked_at {
        let e = &events[i];
        if is_row_event(&e.event_type) || (i == first && row.started_at == Value::Null) {
            row.apply_fields(&e.event_type, e.fields(i)?);
        }
    }
    row.event_count += at.len() as i64;
    row.last_sequence = Value::Integer(events[last].sequence);
    row.last_hash = events[last].event_hash(last)?;
    Ok(())
}

/// Applies a batch to its sessions' rows, sessions in order of first
/// appearance: `stored(session id)` gives a session's row as kept (None:
/// a new row, whose trace id is its first event's). Returns each row the
/// batch changed, as it is after the batch, with the positions of its
/// session's events; on an error nothing is returned, so a caller keeping
/// rows changes none of them.
pub fn apply_batch(
    events: &[StoreEvent],
    mut stored: impl FnMut(&str) -> SqliteResult<Option<SessionRow>>,
) -> SqliteResult<Vec<(SessionRow, Vec<usize>)>> {
    let sessions = by_session(events);
    let special = events.iter().any(|e| is_row_event(&e.event_type));
    let mut rows = Vec::with_capacity(sessions.len());
    for (sid, at) in sessions {
        let mut row = match stored(sid)? {
            Some(row) => row,
            None => SessionRow::new(sid, events[at[0]].trace_id(at[0])?),
        };
        apply(&mut row, events, &at, special)?;
        rows.push((row, at));
    }
    Ok(rows)
}
