//! The JSON Lines file sink: appends one event per line, fsyncs on flush,
//! and never leaves half a batch behind. Opening never rewrites the file: a
//! torn last line is copied to a side file and ended with a newline.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::{CoreError, Result};
use crate::trace::sink::{SealedBatch, Sink, SinkFactory};

pub struct JsonlSink {
    path: PathBuf,
    file: File,
    len: u64,
    buf: Vec<u8>,
    /// Bytes of a torn last line found when the file was opened: copied to
    /// `torn_file` and left in place, ended by a newline (the `repaired_bytes`
    /// of the recorder's stats).
    pub repaired_bytes: u64,
    /// The side file that holds a copy of that torn line.
    pub torn_file: Option<PathBuf>,
}

impl JsonlSink {
    /// Opens for appending. When `repair`, a torn last line (bytes after
    /// the last newline, left by a crash) is copied to a side file (named
    /// by [`torn_file_name`]) and then ended with a newline, so that it becomes a
    /// line of its own, which a verifier reports by number, and new events
    /// start on a fresh line. No byte already in the file is changed. Never
    /// in a forked child: the parent may be writing that line.
    pub fn open(path: &Path, repair: bool) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| CoreError::io(dir.display(), e))?;
        }
        let io = |e| CoreError::io(path.display(), e);
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let keep = if repair {
            complete_prefix_len(&mut file, len).map_err(io)?
        } else {
            len
        };
        let mut torn_file = None;
        let mut end = len;
        if keep < len {
            let side = set_aside(path, &mut file, keep, len)?;
            // The side file is durable before the line is ended.
            file.write_all(b"\n").map_err(io)?;
            file.sync_data().map_err(io)?;
            torn_file = Some(side);
            end += 1;
        }
        Ok(JsonlSink {
            path: path.to_path_buf(),
            file,
            len: end,
            buf: Vec::with_capacity(1 << 16),
            repaired_bytes: len - keep,
            torn_file,
        })
    }
}

/// The name of the side file for a torn line that starts at byte `offset`
/// of `path`: `<name>.torn-<offset>`, then `<name>.torn-<offset>.<n>`
/// (n = 1, 2, …) when that name is taken by other bytes.
pub fn torn_file_name(path: &Path, offset: u64, n: u32) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let suffix = if n == 0 {
        format!("{name}.torn-{offset}")
    } else {
        format!("{name}.torn-{offset}.{n}")
    };
    path.with_file_name(suffix)
}

/// Copies bytes `start..end` of `file` (its torn last line) to a new side
/// file beside `path`, fsynced (and its directory), and returns its path.
/// An existing side file is never overwritten; one that already holds exactly
/// these bytes (left by an open that crashed before ending the line) is
/// reused.
fn set_aside(path: &Path, file: &mut File, start: u64, end: u64) -> Result<PathBuf> {
    let io = |e| CoreError::io(path.display(), e);
    let mut torn = Vec::with_capacity((end - start).min(1 << 20) as usize);
    file.seek(SeekFrom::Start(start)).map_err(io)?;
    file.take(end - start).read_to_end(&mut torn).map_err(io)?;
    if torn.len() as u64 != end - start {
        return Err(io(std::io::Error::from(std::io::ErrorKind::UnexpectedEof)));
    }
    for n in 0.. {
        let side = torn_file_name(path, start, n);
        let side_io = |e| CoreError::io(side.display(), e);
        let mut out = match OpenOptions::new().write(true).create_new(true).open(&side) {
            Ok(out) => out,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                if std::fs::read(&side).map_err(side_io)? == torn {
                    return Ok(side);
                }
                continue;
            }
            Err(e) => return Err(side_io(e)),
        };
        out.write_all(&torn).map_err(side_io)?;
        out.sync_all().map_err(side_io)?;
        sync_dir(&side);
        return Ok(side);
    }
    unreachable!("the side file names run out")
}

/// Makes a new directory entry durable (where the platform allows it).
fn sync_dir(file: &Path) {
    let dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Length of the file up to and including its last newline.
fn complete_prefix_len(file: &mut File, len: u64) -> std::io::Result<u64> {
    let mut end = len;
    let mut chunk = vec![0u8; 4096];
    while end > 0 {
        let start = end.saturating_sub(chunk.len() as u64);
        let n = (end - start) as usize;
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut chunk[..n])?;
        if let Some(i) = chunk[..n].iter().rposition(|&b| b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

impl Sink for JsonlSink {
    fn write_batch(&mut self, events: &SealedBatch) -> Result<()> {
        self.buf.clear();
        for e in events {
            e.write_json(&mut self.buf);
            self.buf.push(b'\n');
        }
        if let Err(e) = self.file.write_all(&self.buf) {
            // Take back a partial write so that a retry leaves no torn line.
            let _ = self.file.set_len(self.len);
            return Err(CoreError::Sink(format!("{}: {e}", self.path.display())));
        }
        self.len += self.buf.len() as u64;
        Ok(())
    }

    fn sync(&mut self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(|e| CoreError::Sink(format!("{}: {e}", self.path.display())))
    }

    fn repaired_bytes(&self) -> u64 {
        self.repaired_bytes
    }
}

pub struct JsonlSinkFactory(pub PathBuf);

impl SinkFactory for JsonlSinkFactory {
    fn open(&self) -> Result<Box<dyn Sink>> {
        Ok(Box::new(JsonlSink::open(&self.0, true)?))
    }

    fn open_in_child(&self) -> Result<Box<dyn Sink>> {
        Ok(Box::new(JsonlSink::open(&self.0, false)?))
    }
}

/// Writes events to `path` as JSON Lines, all or nothing (temp file, fsync,
/// rename). Returns how many were written.
pub fn write_events_file(path: &Path, events: &SealedBatch) -> Result<usize> {
    let io = |e| CoreError::io(path.display(), e);
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = std::io::BufWriter::new(File::create(&tmp)?);
        let mut buf = Vec::with_capacity(1024);
        for e in events {
            buf.clear();
            e.write_json(&mut buf);
            buf.push(b'\n');
            file.write_all(&buf)?;
        }
        let file = file.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(e));
    }
    Ok(events.len())
}

#[cfg(test)]
mod tests {
    //! The JSON Lines sink on open: a torn last line is copied to a side file
    //! and ended with a newline; no byte already in the file changes.

    use std::path::Path;
    use std::sync::Arc;

    use uuid::Uuid;

    use super::{torn_file_name, JsonlSink};
    use crate::trace::chain::{Body, ChainStart, Chains, Record, SpanRef};
    use crate::trace::event::TraceEvent;
    use crate::trace::hash::HashAlgorithm;
    use crate::trace::sink::Sink;
    use crate::trace::verify_file::verify_file;

    const NOW: i64 = 1_700_000_000_000_000;
    /// Half an event line, as a crash mid-write leaves it.
    const TORN: &[u8] = br#"{"event_hash":"9f86d081884c7d659a2feaa0c55ad015","event_id":"01"#;

    /// `n` sealed events of a new session `id` (its `session.started` first).
    fn events(chains: &mut Chains, id: u128, n: usize) -> Vec<Arc<TraceEvent>> {
        let session_id = Uuid::from_u128(id);
        let mut out = Vec::new();
        for i in 0..n {
            let start = (i == 0).then(|| {
                Box::new(ChainStart {
                    trace_id: Uuid::from_u128(id + 1),
                    root_span: Uuid::from_u128(id + 2),
                    next_sequence: 0,
                    previous_hash: [0; 32],
                })
            });
            let event_type = if i == 0 { "session.started" } else { "x.tick" };
            let record = Record {
                session_id,
                span: if i == 0 {
                    SpanRef::Root
                } else {
                    SpanRef::Fresh
                },
                micros: NOW + i as i64,
                body: Body::One(event_type.into(), format!("{{\"i\":{i}}}").into()),
                start,
                ends_chain: false,
            };
            chains.seal(record, &mut out);
        }
        out
    }

    fn write(path: &Path, repair: bool, batch: &[Arc<TraceEvent>]) -> JsonlSink {
        let mut sink = JsonlSink::open(path, repair).unwrap();
        sink.write_batch(batch).unwrap();
        sink.sync().unwrap();
        sink
    }

    /// A file of one session's 5 events, then half a line.
    fn torn_file(dir: &Path, chains: &mut Chains) -> (std::path::PathBuf, Vec<u8>) {
        let path = dir.join("run.trace.jsonl");
        drop(write(&path, true, &events(chains, 100, 5)));
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        std::io::Write::write_all(&mut f, TORN).unwrap();
        (path.clone(), std::fs::read(&path).unwrap())
    }

    fn side_files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".torn-"))
            .collect();
        names.sort();
        names
    }

    #[test]
    fn reopening_keeps_every_byte_and_copies_the_torn_line_to_a_side_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut chains = Chains::new(HashAlgorithm::Sha256, None);
        let (path, before) = torn_file(dir.path(), &mut chains);
        let offset = (before.len() - TORN.len()) as u64;

        let sink = write(&path, true, &events(&mut chains, 200, 3));
        assert_eq!(sink.repaired_bytes(), TORN.len() as u64);
        let side = torn_file_name(&path, offset, 0);
        assert_eq!(sink.torn_file.as_deref(), Some(side.as_path()));
        drop(sink);

        let after = std::fs::read(&path).unwrap();
        assert!(
            after.starts_with(&before),
            "the original bytes are a prefix"
        );
        assert_eq!(
            after[before.len()],
            b'\n',
            "the torn line is ended, not cut"
        );
        assert_eq!(std::fs::read(&side).unwrap(), TORN);
        assert_eq!(
            side_files(dir.path()),
            vec![format!("run.trace.jsonl.torn-{offset}")]
        );

        // The torn line is line 6, set aside (not a bad line); the events
        // around it verify, so the file does.
        let report = verify_file(&path, &mut |_| {}).unwrap();
        assert_eq!(report.torn_tail, None);
        assert_eq!(report.bad_line_count, 0);
        assert!(report.bad_lines.is_empty());
        assert_eq!(report.torn_line_count, 1);
        assert_eq!(report.torn_lines[0].line, 6);
        assert_eq!(report.torn_lines[0].offset, offset);
        assert_eq!(report.torn_lines[0].bytes, TORN.len() as u64);
        assert_eq!(report.torn_lines[0].side_file, side);
        let counts: Vec<u64> = report.sessions.iter().map(|s| s.event_count).collect();
        assert_eq!(counts, vec![5, 3]);
        assert!(report.sessions.iter().all(|s| s.valid()));
        assert!(report.valid());
    }

    #[test]
    fn a_second_open_sets_nothing_aside_for_a_line_already_ended() {
        let dir = tempfile::tempdir().unwrap();
        let mut chains = Chains::new(HashAlgorithm::Sha256, None);
        let (path, _) = torn_file(dir.path(), &mut chains);
        drop(write(&path, true, &events(&mut chains, 200, 2)));
        let once = std::fs::read(&path).unwrap();

        let sink = write(&path, true, &events(&mut chains, 300, 2));
        assert_eq!((sink.repaired_bytes(), sink.torn_file.clone()), (0, None));
        drop(sink);
        assert!(std::fs::read(&path).unwrap().starts_with(&once));
        assert_eq!(side_files(dir.path()).len(), 1);
        let report = verify_file(&path, &mut |_| {}).unwrap();
        assert_eq!(
            (
                report.bad_line_count,
                report.torn_line_count,
                report.event_count()
            ),
            (0, 1, 9)
        );
        assert!(report.valid());
    }

    #[test]
    fn a_side_file_is_never_overwritten_and_one_with_the_same_bytes_is_reused() {
        let dir = tempfile::tempdir().unwrap();
        let mut chains = Chains::new(HashAlgorithm::Sha256, None);
        let (path, before) = torn_file(dir.path(), &mut chains);
        let offset = (before.len() - TORN.len()) as u64;
        // Another torn line once started at the same offset (the file was
        // replaced since): its copy stays as it is.
        std::fs::write(torn_file_name(&path, offset, 0), b"other bytes").unwrap();
        let sink = JsonlSink::open(&path, true).unwrap();
        let side = torn_file_name(&path, offset, 1);
        assert_eq!(sink.torn_file.as_deref(), Some(side.as_path()));
        assert_eq!(
            std::fs::read(torn_file_name(&path, offset, 0)).unwrap(),
            b"other bytes"
        );
        assert_eq!(std::fs::read(&side).unwrap(), TORN);
        drop(sink);

        // An open that crashed after the copy, before ending the line: the
        // copy is found again, not made twice.
        let (path, before) = torn_file(&dir.path().join("again"), &mut chains);
        let offset = (before.len() - TORN.len()) as u64;
        std::fs::write(torn_file_name(&path, offset, 0), TORN).unwrap();
        let sink = JsonlSink::open(&path, true).unwrap();
        let side = torn_file_name(&path, offset, 0);
        assert_eq!(sink.torn_file.as_deref(), Some(side.as_path()));
        assert_eq!(side_files(&dir.path().join("again")).len(), 1);
    }

    #[test]
    fn a_forked_child_leaves_a_torn_line_alone() {
        let dir = tempfile::tempdir().unwrap();
        let mut chains = Chains::new(HashAlgorithm::Sha256, None);
        let (path, before) = torn_file(dir.path(), &mut chains);
        let sink = JsonlSink::open(&path, false).unwrap();
        assert_eq!((sink.repaired_bytes(), sink.torn_file.clone()), (0, None));
        drop(sink);
        assert_eq!(std::fs::read(&path).unwrap(), before);
        assert!(side_files(dir.path()).is_empty());
    }
}
