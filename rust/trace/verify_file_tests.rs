//! Tests of `verify_file`: anchors, torn lines set aside, bad lines.

use super::*;

use std::sync::Arc;

use uuid::Uuid;

use crate::trace::chain::{Body, ChainStart, Chains, Record, SpanRef};
use crate::trace::event::TraceEvent;

const HASH: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

#[test]
fn anchor_file_sits_beside_the_trace() {
    let p = anchor_path_for(Path::new("dir/run.trace.jsonl"));
    assert_eq!(p, PathBuf::from("dir/run.trace.jsonl.anchor.json"));
}

#[test]
fn anchors_parse_strictly() {
    let ok = format!(
        r#"{{"anchor_version": 1, "anchors": [{{"session_id": "s", "first_sequence": 8,
            "previous_event_hash": "{HASH}", "hash_algorithm": "blake3"}}]}}"#
    );
    assert_eq!(
        parse_anchors(&ok, "a.json").unwrap(),
        vec![Anchor {
            session_id: "s".into(),
            sequence: 8,
            previous_hash: HASH.into(),
            algorithm: Some(HashAlgorithm::Blake3),
        }]
    );
    let twice = ok.replace("}]}", &format!("}}, {{\"session_id\": \"s\", \"first_sequence\": 1, \"previous_event_hash\": \"{HASH}\"}}]}}"));
    for bad in [
        "[]".to_string(),
        ok.replace("\"anchor_version\": 1", "\"anchor_version\": 2"),
        ok.replace("\"first_sequence\": 8", "\"first_sequence\": -8"),
        ok.replace(HASH, &HASH[1..]),
        ok.replace(HASH, &HASH.to_uppercase()),
        ok.replace("blake3", "md5"),
        twice,
    ] {
        let e = parse_anchors(&bad, "a.json").unwrap_err();
        assert_eq!(e.code(), "TRACE_INVALID", "{bad}");
        assert!(
            e.to_string().contains("a.json is not a trace anchor file"),
            "{e}"
        );
    }
}

/// Half an event line, as a crash mid-write leaves it.
const TORN: &[u8] = br#"{"trace_version":"1.0","event_id":"0190f1c2-"#;

/// The JSON lines of `n` sealed events of session `id`, from `from`
/// (its `session.started` first when `from` is 0).
fn lines(chains: &mut Chains, id: u128, from: usize, n: usize) -> Vec<Vec<u8>> {
    let mut out: Vec<Arc<TraceEvent>> = Vec::new();
    for i in from..from + n {
        let record = Record {
            session_id: Uuid::from_u128(id),
            span: if i == 0 {
                SpanRef::Root
            } else {
                SpanRef::Fresh
            },
            micros: 1_700_000_000_000_000 + i as i64,
            body: Body::One(
                if i == 0 { "session.started" } else { "x.tick" }.into(),
                format!("{{\"i\":{i}}}").into(),
            ),
            start: (i == 0).then(|| {
                Box::new(ChainStart {
                    trace_id: Uuid::from_u128(id + 1),
                    root_span: Uuid::from_u128(id + 2),
                    next_sequence: 0,
                    previous_hash: [0; 32],
                })
            }),
            ends_chain: false,
        };
        chains.seal(record, &mut out);
    }
    out.iter()
        .map(|e| {
            let mut line = Vec::new();
            e.write_json(&mut line);
            line
        })
        .collect()
}

/// A file of the given lines (each ended by a newline) in a new
/// directory; the path, and where line `n` (from 1) starts.
fn write_lines(dir: &Path, lines: &[Vec<u8>], n: usize) -> (PathBuf, u64) {
    let path = dir.join("run.trace.jsonl");
    let mut data = Vec::new();
    let mut offset = 0;
    for (i, line) in lines.iter().enumerate() {
        if i + 1 == n {
            offset = data.len() as u64;
        }
        data.extend_from_slice(line);
        data.push(b'\n');
    }
    std::fs::write(&path, data).unwrap();
    (path, offset)
}

/// Session 100's three events, `TORN` as line 4, session 200's two events.
fn reopened(dir: &Path) -> (PathBuf, u64) {
    let mut chains = Chains::new(HashAlgorithm::Sha256, None);
    let mut all = lines(&mut chains, 100, 0, 3);
    all.push(TORN.to_vec());
    all.extend(lines(&mut chains, 200, 0, 2));
    write_lines(dir, &all, 4)
}

fn side(path: &Path, offset: u64, n: u32) -> PathBuf {
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let suffix = if n == 0 {
        String::new()
    } else {
        format!(".{n}")
    };
    path.with_file_name(format!("{name}.torn-{offset}{suffix}"))
}

#[test]
fn a_torn_line_set_aside_is_reported_apart_and_the_file_stays_valid() {
    let dir = tempfile::tempdir().unwrap();
    let (path, offset) = reopened(dir.path());
    std::fs::write(side(&path, offset, 0), TORN).unwrap();

    let report = verify_file(&path, &mut |_| {}).unwrap();
    assert_eq!((report.bad_line_count, report.bad_lines.len()), (0, 0));
    assert_eq!(report.torn_line_count, 1);
    assert_eq!(
        report.torn_lines,
        vec![TornLine {
            line: 4,
            offset,
            bytes: TORN.len() as u64,
            side_file: side(&path, offset, 0),
        }]
    );
    let counts: Vec<u64> = report.sessions.iter().map(|s| s.event_count).collect();
    assert_eq!(counts, vec![3, 2]);
    assert!(report.sessions.iter().all(|s| s.valid()));
    assert_eq!(report.torn_tail, None);
    assert!(report.valid());

    // The copy is looked for under every name the sink may have picked.
    std::fs::write(side(&path, offset, 0), b"another torn line").unwrap();
    std::fs::write(side(&path, offset, 1), TORN).unwrap();
    let report = verify_file(&path, &mut |_| {}).unwrap();
    assert_eq!(report.torn_lines[0].side_file, side(&path, offset, 1));
    assert!(report.valid());
}

#[test]
fn a_bad_line_without_its_copy_stays_a_bad_line() {
    let dir = tempfile::tempdir().unwrap();
    let (path, offset) = reopened(dir.path());
    let is_bad = |path: &Path| {
        let report = verify_file(path, &mut |_| {}).unwrap();
        assert!(report.torn_lines.is_empty());
        assert_eq!(report.torn_line_count, 0);
        assert_eq!(report.bad_line_count, 1);
        assert_eq!(report.bad_lines[0].line, 4);
        assert!(
            report.bad_lines[0].message.starts_with("not a TRACE event"),
            "{:?}",
            report.bad_lines
        );
        assert!(!report.valid());
    };
    // No side file at all.
    is_bad(&path);
    // A side file of other bytes, or for another offset, or with a gap
    // before it in the names the sink picks.
    std::fs::write(side(&path, offset, 0), &TORN[1..]).unwrap();
    is_bad(&path);
    std::fs::write(side(&path, offset + 1, 0), TORN).unwrap();
    is_bad(&path);
    std::fs::write(side(&path, offset, 2), TORN).unwrap();
    is_bad(&path);
    // A reader has no side files.
    std::fs::write(side(&path, offset, 1), TORN).unwrap();
    assert_eq!(verify_file(&path, &mut |_| {}).unwrap().torn_line_count, 1);
    let report = verify_reader(File::open(&path).unwrap(), &mut |_| {}).unwrap();
    assert_eq!((report.bad_line_count, report.torn_line_count), (1, 0));
}

#[test]
fn a_line_that_is_json_is_never_a_torn_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut chains = Chains::new(HashAlgorithm::Sha256, None);
    // A whole event that lacked only its newline when the file was
    // reopened: an event like any other.
    let all = lines(&mut chains, 100, 0, 3);
    let (path, offset) = write_lines(dir.path(), &all, 3);
    std::fs::write(side(&path, offset, 0), &all[2]).unwrap();
    let report = verify_file(&path, &mut |_| {}).unwrap();
    assert_eq!((report.event_count(), report.torn_line_count), (3, 0));
    assert!(report.valid());
    // JSON that is not an event stays a bad line, copy or not.
    let mut all = all;
    all[2] = br#"{"torn":false}"#.to_vec();
    let (path, offset) = write_lines(dir.path(), &all, 3);
    std::fs::write(side(&path, offset, 0), &all[2]).unwrap();
    let report = verify_file(&path, &mut |_| {}).unwrap();
    assert_eq!((report.bad_line_count, report.torn_line_count), (1, 0));
}

#[test]
fn a_chain_that_goes_on_after_its_torn_event_is_not_valid() {
    let dir = tempfile::tempdir().unwrap();
    let mut chains = Chains::new(HashAlgorithm::Sha256, None);
    // Event 3 of the chain was torn; event 4 links to it.
    let mut all = lines(&mut chains, 100, 0, 5);
    let torn_event = all.remove(3);
    all.insert(3, torn_event[..torn_event.len() / 2].to_vec());
    let (path, offset) = write_lines(dir.path(), &all, 4);
    std::fs::write(side(&path, offset, 0), &all[3]).unwrap();
    let report = verify_file(&path, &mut |_| {}).unwrap();
    assert_eq!((report.bad_line_count, report.torn_line_count), (0, 1));
    let fault = report.sessions[0].fault.as_ref().expect("a broken chain");
    assert_eq!(fault.line, Some(5));
    assert!(!report.valid());
}
