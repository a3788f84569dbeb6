//! Events read back from a trace (a file or memory) for replay, diff and
//! state reconstruction: the fields those need, parsed once.

use std::borrow::Cow;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::error::{CoreError, Result};
use crate::time::{parse_timestamp, Micros};
use crate::trace::verify_file::set_aside_torn_line;

#[derive(Debug, Clone)]
pub struct Recorded {
    pub session_id: String,
    pub trace_id: String,
    pub span_id: String,
    pub sequence: u64,
    pub timestamp: String,
    pub micros: Micros,
    pub event_type: String,
    pub payload: Value,
    /// The whole event as read (for diffs).
    pub raw: Value,
}

fn field<'a>(v: &'a Value, key: &str, i: usize) -> Result<&'a str> {
    v.get(key).and_then(Value::as_str).ok_or_else(|| {
        CoreError::invalid(
            "TRACE_INVALID",
            format!("/{i}/{key}"),
            format!("event {i} has no string {key}"),
        )
    })
}

impl Recorded {
    pub fn from_value(v: Value, i: usize) -> Result<Recorded> {
        Recorded::build(v, i, true)
    }

    /// `from_value` without the whole event kept (`raw` is null): the
    /// payload is moved out, not copied. For replay and reconstruction.
    pub fn from_value_lean(v: Value, i: usize) -> Result<Recorded> {
        Recorded::build(v, i, false)
    }

    fn build(mut v: Value, i: usize, keep_raw: bool) -> Result<Recorded> {
        let timestamp = field(&v, "timestamp", i)?.to_string();
        let micros = parse_timestamp(&timestamp, &format!("/{i}/timestamp")).map_err(|e| {
            CoreError::invalid("TRACE_INVALID", format!("/{i}/timestamp"), e.message())
        })?;
        Ok(Recorded {
            session_id: field(&v, "session_id", i)?.to_string(),
            trace_id: field(&v, "trace_id", i)?.to_string(),
            span_id: field(&v, "span_id", i)?.to_string(),
            sequence: v.get("sequence").and_then(Value::as_u64).ok_or_else(|| {
                CoreError::invalid(
                    "TRACE_INVALID",
                    format!("/{i}/sequence"),
                    "missing sequence",
                )
            })?,
            event_type: field(&v, "event_type", i)?.to_string(),
            payload: if keep_raw {
                v.get("payload").cloned().unwrap_or(Value::Null)
            } else {
                v.as_object_mut()
                    .and_then(|m| m.remove("payload"))
                    .unwrap_or(Value::Null)
            },
            timestamp,
            micros,
            raw: if keep_raw { v } else { Value::Null },
        })
    }

    /// Parses one event given as JSON text, `i` its index in the trace.
    pub fn parse(text: &[u8], i: usize, keep_raw: bool) -> Result<Recorded> {
        if !keep_raw {
            if let Some(r) = Recorded::parse_lean(text) {
                return Ok(r);
            }
        }
        let v: Value = serde_json::from_slice(text).map_err(|e| {
            CoreError::invalid("TRACE_INVALID", format!("/{i}"), format!("not JSON: {e}"))
        })?;
        Recorded::build(v, i, keep_raw)
    }

    /// Parses events given as JSON texts (one event each).
    pub fn parse_all<'a>(texts: impl IntoIterator<Item = &'a str>) -> Result<Vec<Recorded>> {
        texts
            .into_iter()
            .enumerate()
            .map(|(i, t)| Recorded::parse(t.as_bytes(), i, true))
            .collect()
    }

    /// The fields replay and reconstruction need, read straight into place
    /// (the other fields skipped, not built); `None` for anything unusual
    /// (a field missing or of another type, a key twice, a bad timestamp),
    /// which the general path then reports exactly.
    fn parse_lean(text: &[u8]) -> Option<Recorded> {
        #[derive(Deserialize)]
        struct Lean<'a> {
            #[serde(borrow)]
            session_id: Cow<'a, str>,
            #[serde(borrow)]
            trace_id: Cow<'a, str>,
            #[serde(borrow)]
            span_id: Cow<'a, str>,
            sequence: u64,
            #[serde(borrow)]
            timestamp: Cow<'a, str>,
            #[serde(borrow)]
            event_type: Cow<'a, str>,
            #[serde(default)]
            payload: Value,
        }
        // serde would also take a JSON array, field by field: objects only.
        if text.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return None;
        }
        let v: Lean<'_> = serde_json::from_slice(text).ok()?;
        let micros = parse_timestamp(&v.timestamp, "/timestamp").ok()?;
        Some(Recorded {
            session_id: v.session_id.into_owned(),
            trace_id: v.trace_id.into_owned(),
            span_id: v.span_id.into_owned(),
            sequence: v.sequence,
            timestamp: v.timestamp.into_owned(),
            micros,
            event_type: v.event_type.into_owned(),
            payload: v.payload,
            raw: Value::Null,
        })
    }

    pub fn str(&self, key: &str) -> Option<&str> {
        self.payload.get(key).and_then(Value::as_str)
    }

    pub fn strings(&self, key: &str) -> Option<Vec<String>> {
        self.payload.get(key)?.as_array().map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
    }
}

/// Reads a `.trace.jsonl` file one line at a time, parsing each event once:
/// what replay, diff and reconstruction stream through, in constant memory.
/// A file whose last line is torn is refused before anything is read; a
/// torn line that reopening the file set aside (not JSON, and a side file
/// `FILE.torn-OFFSET[.N]` holds exactly its bytes, see
/// `set_aside_torn_line`) is skipped, not counted as an event.
pub struct TraceReader {
    reader: BufReader<File>,
    line: Vec<u8>,
    keep_raw: bool,
    /// Events returned so far (blank lines and torn lines set aside are
    /// skipped, not counted).
    events: usize,
    bytes: u64,
    path: String,
    file: PathBuf,
    /// The torn lines skipped: where each starts, and its side file.
    torn: Vec<(u64, PathBuf)>,
}

impl TraceReader {
    /// Opens `path`; with `keep_raw` each event keeps its whole JSON (diff).
    pub fn open(path: &Path, keep_raw: bool) -> Result<TraceReader> {
        let shown = path.display().to_string();
        let io = |e: std::io::Error| CoreError::io(&shown, e);
        let mut file = File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        if len > 0 {
            let mut last = [0u8; 1];
            file.seek(SeekFrom::Start(len - 1)).map_err(io)?;
            file.read_exact(&mut last).map_err(io)?;
            if last[0] != b'\n' {
                return Err(CoreError::invalid(
                    "TRACE_TORN",
                    shown.clone(),
                    format!("{shown} ends in a torn line; run `cra trace verify` on it first"),
                ));
            }
            file.seek(SeekFrom::Start(0)).map_err(io)?;
        }
        Ok(TraceReader {
            reader: BufReader::with_capacity(1 << 16, file),
            line: Vec::with_capacity(4096),
            keep_raw,
            events: 0,
            bytes: 0,
            path: shown,
            file: path.to_path_buf(),
            torn: Vec::new(),
        })
    }

    /// The next event, `None` at the end of the file.
    pub fn next_event(&mut self) -> Result<Option<Recorded>> {
        loop {
            self.line.clear();
            let n = self
                .reader
                .read_until(b'\n', &mut self.line)
                .map_err(|e| CoreError::io(&self.path, e))?;
            if n == 0 {
                return Ok(None);
            }
            let offset = self.bytes;
            self.bytes += n as u64;
            if self.line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let parsed = Recorded::parse(&self.line, self.events, self.keep_raw);
            if parsed.is_err() {
                if let Some(side) = self
                    .line
                    .strip_suffix(b"\n")
                    .and_then(|raw| set_aside_torn_line(&self.file, offset, raw))
                {
                    self.torn.push((offset, side));
                    continue;
                }
            }
            self.events += 1;
            return parsed.map(Some);
        }
    }

    /// The torn lines set aside that were skipped so far: the byte offset
    /// where each starts, and the side file holding its copy.
    pub fn torn_lines(&self) -> &[(u64, PathBuf)] {
        &self.torn
    }

    /// Bytes read so far (for progress displays).
    pub fn bytes_read(&self) -> u64 {
        self.bytes
    }

    pub fn events_read(&self) -> usize {
        self.events
    }
}

impl Iterator for TraceReader {
    type Item = Result<Recorded>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_event().transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const EVENT: &str = r#"{"session_id":"s","trace_id":"t","span_id":"p","sequence":0,"timestamp":"2026-01-01T00:00:00.000000Z","event_type":"x","payload":{"a":1}}"#;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn reads_events_one_at_a_time_skipping_blank_lines() {
        let f = file(&format!("{EVENT}\n\n  \r\n{EVENT}\r\n"));
        let mut r = TraceReader::open(f.path(), false).unwrap();
        let e = r.next_event().unwrap().unwrap();
        assert_eq!((e.event_type.as_str(), e.raw.is_null()), ("x", true));
        assert_eq!(e.payload["a"], 1);
        assert!(r.next_event().unwrap().is_some());
        assert!(r.next_event().unwrap().is_none());
        assert_eq!(r.events_read(), 2);
        assert_eq!(r.bytes_read(), f.as_file().metadata().unwrap().len());
        let kept = TraceReader::open(f.path(), true)
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        assert_eq!(kept.raw["payload"]["a"], 1);
    }

    #[test]
    fn the_lean_parse_reads_what_the_general_one_does() {
        let dup = EVENT.replace("\"sequence\":0", "\"sequence\":0,\"sequence\":3");
        let arr = r#"["s","t","p",0,"2026-01-01T00:00:00.000000Z","x",{"a":1}]"#;
        for text in [
            EVENT,
            dup.as_str(),
            &EVENT.replace(",\"payload\":{\"a\":1}", ""),
        ] {
            let lean = Recorded::parse(text.as_bytes(), 0, false).unwrap();
            let full = Recorded::parse(text.as_bytes(), 0, true).unwrap();
            assert_eq!(
                (
                    &lean.session_id,
                    lean.sequence,
                    &lean.timestamp,
                    lean.micros,
                    &lean.payload
                ),
                (
                    &full.session_id,
                    full.sequence,
                    &full.timestamp,
                    full.micros,
                    &full.payload
                ),
            );
        }
        assert_eq!(
            Recorded::parse(dup.as_bytes(), 0, false).unwrap().sequence,
            3
        );
        let e = Recorded::parse(arr.as_bytes(), 7, false).unwrap_err();
        assert!(
            e.to_string().contains("event 7 has no string timestamp"),
            "{e}"
        );
        let bad_time = EVENT.replace("2026-01-01T00:00:00.000000Z", "yesterday");
        assert!(Recorded::parse(bad_time.as_bytes(), 0, false).is_err());
    }

    #[test]
    fn a_torn_file_is_refused_before_reading() {
        let f = file(&format!("{EVENT}\n{{\"trace_ver"));
        let e = TraceReader::open(f.path(), false).err().unwrap();
        assert_eq!(e.code(), "TRACE_TORN");
    }

    #[test]
    fn a_bad_event_is_named_by_its_index() {
        let f = file(&format!(
            "{EVENT}\n\n{}\n",
            EVENT.replace("\"span_id\":\"p\",", "")
        ));
        let mut r = TraceReader::open(f.path(), false).unwrap();
        assert!(r.next_event().unwrap().is_some());
        let e = r.next_event().unwrap_err();
        assert_eq!(e.code(), "TRACE_INVALID");
        assert!(
            e.to_string().contains("event 1 has no string span_id"),
            "{e}"
        );
    }

    /// A file of `EVENT`, half an event (a torn line ended by reopening),
    /// `EVENT` again; its path and where the torn line starts.
    fn reopened(dir: &Path, torn: &[u8]) -> (PathBuf, u64) {
        let path = dir.join("run.trace.jsonl");
        let mut data = format!("{EVENT}\n").into_bytes();
        let offset = data.len() as u64;
        data.extend_from_slice(torn);
        data.extend_from_slice(format!("\n{EVENT}\n").as_bytes());
        std::fs::write(&path, data).unwrap();
        (path, offset)
    }

    const TORN: &[u8] = br#"{"session_id":"s","trace_id":"t","span_id":"p","seq"#;

    #[test]
    fn a_torn_line_set_aside_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let (path, offset) = reopened(dir.path(), TORN);
        let side = dir.path().join(format!("run.trace.jsonl.torn-{offset}"));
        std::fs::write(&side, TORN).unwrap();
        for keep_raw in [false, true] {
            let mut r = TraceReader::open(&path, keep_raw).unwrap();
            let read: Vec<Recorded> = r.by_ref().collect::<Result<_>>().unwrap();
            assert_eq!(read.len(), 2);
            assert_eq!(r.events_read(), 2);
            assert_eq!(r.torn_lines(), &[(offset, side.clone())]);
        }
        // Under the name the sink picks when the first one holds other bytes.
        std::fs::write(&side, b"other bytes").unwrap();
        let side_1 = dir.path().join(format!("run.trace.jsonl.torn-{offset}.1"));
        std::fs::write(&side_1, TORN).unwrap();
        let mut r = TraceReader::open(&path, false).unwrap();
        assert_eq!(r.by_ref().count(), 2);
        assert_eq!(r.torn_lines(), &[(offset, side_1)]);
    }

    #[test]
    fn a_bad_line_without_its_copy_is_refused_as_before() {
        let dir = tempfile::tempdir().unwrap();
        let (path, offset) = reopened(dir.path(), TORN);
        let refused = |path: &Path| {
            let mut r = TraceReader::open(path, false).unwrap();
            assert!(r.next_event().unwrap().is_some());
            let e = r.next_event().unwrap_err();
            assert_eq!(e.code(), "TRACE_INVALID");
            assert!(e.to_string().contains("not JSON"), "{e}");
            assert!(r.torn_lines().is_empty());
        };
        refused(&path);
        // A copy of other bytes, or of a line at another offset.
        let side = |at: u64| dir.path().join(format!("run.trace.jsonl.torn-{at}"));
        std::fs::write(side(offset), &TORN[..TORN.len() - 1]).unwrap();
        refused(&path);
        std::fs::write(side(offset + 1), TORN).unwrap();
        refused(&path);
        // A line that is JSON is read as an event, whatever its copy: here
        // one with no span_id, refused as such.
        let partial = EVENT.replace("\"span_id\":\"p\",", "");
        let (path, offset) = reopened(dir.path(), partial.as_bytes());
        std::fs::write(side(offset), &partial).unwrap();
        let e = TraceReader::open(&path, false)
            .unwrap()
            .nth(1)
            .unwrap()
            .unwrap_err();
        assert!(
            e.to_string().contains("event 1 has no string span_id"),
            "{e}"
        );
    }
}
