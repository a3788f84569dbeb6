//! The JSON Lines file sink: appends one event per line, fsyncs on flush,
//! and never leaves half a batch behind.

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
    /// Bytes of a torn last line removed when the file was opened.
    pub repaired_bytes: u64,
}

impl JsonlSink {
    /// Opens for appending; a torn last line is cut off when `repair`
    /// (never in a forked child: the parent may be writing that line).
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
        if keep < len {
            file.set_len(keep).map_err(io)?;
        }
        Ok(JsonlSink {
            path: path.to_path_buf(),
            file,
            len: keep,
            buf: Vec::with_capacity(1 << 16),
            repaired_bytes: len - keep,
        })
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
