//! Merkle proofs from a trace file, and their offline check: an inclusion
//! proof shows that one event is in the tree a signed checkpoint states; a
//! consistency proof shows that a later checkpoint's tree extends an
//! earlier one's (the chain only grew). A proof is one self-contained JSON
//! document; checking it needs the public key and nothing else.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use serde_json::{json, Value};

use crate::error::{CoreError, Result};
use crate::json::canonical::to_canonical;
use crate::trace::checkpoint::{Statement, CHECKPOINT_EVENT};
use crate::trace::hash::{HashAlgorithm, HashInput};
use crate::trace::merkle::{
    consistency_proof, inclusion_proof, verify_consistency, verify_inclusion, Hash,
};
use crate::trace::signing::CheckpointKey;

pub const INCLUSION: &str = "cra-inclusion/1";
pub const CONSISTENCY: &str = "cra-consistency/1";

fn invalid(path: &str, message: impl Into<String>) -> CoreError {
    CoreError::invalid("PROOF_INVALID", path, message)
}

/// The events of one session in a trace file, in file order (whole JSON).
fn session_events(path: &Path, session_id: &str) -> Result<Vec<Value>> {
    let file = File::open(path).map_err(|e| CoreError::io(path.display(), e))?;
    let mut out = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| CoreError::io(path.display(), e))?;
        if line.trim().is_empty() {
            continue;
        }
        let Ok(v) = serde_json::from_str::<Value>(&line) else {
            continue; // a bad or torn line is `cra trace verify`'s business
        };
        if v.get("session_id").and_then(Value::as_str) == Some(session_id) {
            out.push(v);
        } else if v.get("session_id").is_none() {
            return Err(CoreError::invalid(
                "TRACE_INVALID",
                format!("/{i}"),
                format!("line {} is not a TRACE event", i + 1),
            ));
        }
    }
    Ok(out)
}

fn hash_bytes(v: &Value, key: &str) -> Option<Hash> {
    let text = v.get(key)?.as_str()?;
    let bytes = hex::decode(text).ok()?;
    <[u8; 32]>::try_from(bytes.as_slice()).ok()
}

/// The leaves (event hashes) of a session's events, and where its tree
/// starts, checked against the checkpoint's statement.
fn leaves(events: &[Value]) -> Result<Vec<Hash>> {
    events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            hash_bytes(e, "event_hash").ok_or_else(|| {
                CoreError::invalid(
                    "TRACE_INVALID",
                    format!("/{i}/event_hash"),
                    "not 64 hex digits",
                )
            })
        })
        .collect()
}

fn statement_of(event: &Value, at: &str) -> Result<(Statement, String)> {
    if event.get("event_type").and_then(Value::as_str) != Some(CHECKPOINT_EVENT) {
        return Err(invalid(at, "not a trace.checkpoint event"));
    }
    let payload = event
        .get("payload")
        .ok_or_else(|| invalid(at, "no payload"))?;
    Statement::parse(payload).map_err(|why| invalid(&format!("{at}/payload"), why))
}

fn hexes(hashes: &[Hash]) -> Vec<String> {
    hashes.iter().map(hex::encode).collect()
}

/// Where a chain's first event sits (sequence), from the first event read.
fn first_sequence(events: &[Value]) -> u64 {
    events
        .first()
        .and_then(|e| e.get("sequence"))
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

/// An inclusion proof of the event `event_id` of `path`, against the last
/// checkpoint of its chain that covers it.
pub fn prove_inclusion(path: &Path, event_id: &str) -> Result<Value> {
    let file = File::open(path).map_err(|e| CoreError::io(path.display(), e))?;
    let mut session = None;
    for line in BufReader::new(file).lines() {
        let line = line.map_err(|e| CoreError::io(path.display(), e))?;
        if !line.contains(event_id) {
            continue;
        }
        if let Ok(v) = serde_json::from_str::<Value>(&line) {
            if v.get("event_id").and_then(Value::as_str) == Some(event_id) {
                session = v
                    .get("session_id")
                    .and_then(Value::as_str)
                    .map(String::from);
                break;
            }
        }
    }
    let session = session.ok_or_else(|| {
        CoreError::invalid(
            "EVENT_NOT_FOUND",
            "/event",
            format!("no event {event_id} in {}", path.display()),
        )
    })?;
    let events = session_events(path, &session)?;
    let first = first_sequence(&events);
    let index = events
        .iter()
        .position(|e| e.get("event_id").and_then(Value::as_str) == Some(event_id))
        .unwrap_or(0) as u64;
    let checkpoint = events
        .iter()
        .rev()
        .find(|e| {
            e.get("event_type").and_then(Value::as_str) == Some(CHECKPOINT_EVENT)
                && e.pointer("/payload/tree_size")
                    .and_then(Value::as_u64)
                    .is_some_and(|n| n > index)
        })
        .ok_or_else(|| {
            CoreError::invalid(
                "CHECKPOINT_NOT_FOUND",
                "/event",
                format!("no checkpoint of session {session} covers event {event_id} (was the trace signed?)"),
            )
        })?;
    let (st, _) = statement_of(checkpoint, "/checkpoint")?;
    if st.first_sequence != first {
        return Err(invalid(
            "/checkpoint",
            "the checkpoint's tree starts at another sequence than the file's chain",
        ));
    }
    let all = leaves(&events)?;
    let size = st.tree_size.min(all.len() as u64) as usize;
    let path_hashes =
        inclusion_proof(index, &all[..size]).map_err(|e| invalid("/leaf_index", e.to_string()))?;
    Ok(json!({
        "proof_version": INCLUSION,
        "event": events[index as usize],
        "leaf_index": index,
        "tree_size": st.tree_size,
        "audit_path": hexes(&path_hashes),
        "checkpoint": checkpoint,
    }))
}

/// A consistency proof between the checkpoints at sequences `from` and
/// `to` of one session (`session_id`, or the file's only session).
pub fn prove_consistency(
    path: &Path,
    session_id: Option<&str>,
    from: u64,
    to: u64,
) -> Result<Value> {
    let session = match session_id {
        Some(s) => s.to_string(),
        None => only_session(path)?,
    };
    let events = session_events(path, &session)?;
    let at = |seq: u64, name: &str| -> Result<&Value> {
        events
            .iter()
            .find(|e| {
                e.get("sequence").and_then(Value::as_u64) == Some(seq)
                    && e.get("event_type").and_then(Value::as_str) == Some(CHECKPOINT_EVENT)
            })
            .ok_or_else(|| {
                CoreError::invalid(
                    "CHECKPOINT_NOT_FOUND",
                    name,
                    format!("session {session} has no checkpoint at sequence {seq}"),
                )
            })
    };
    let (a, b) = (at(from, "/from")?, at(to, "/to")?);
    let (sa, _) = statement_of(a, "/first")?;
    let (sb, _) = statement_of(b, "/second")?;
    if sa.tree_size > sb.tree_size {
        return Err(invalid("/from", "--from must name the earlier checkpoint"));
    }
    let all = leaves(&events)?;
    let n = (sb.tree_size as usize).min(all.len());
    let proof = consistency_proof(sa.tree_size, sb.tree_size, &all[..n])
        .map_err(|e| invalid("/from", e.to_string()))?;
    Ok(json!({
        "proof_version": CONSISTENCY,
        "first": a,
        "second": b,
        "first_size": sa.tree_size,
        "second_size": sb.tree_size,
        "proof": hexes(&proof),
    }))
}

fn only_session(path: &Path) -> Result<String> {
    let file = File::open(path).map_err(|e| CoreError::io(path.display(), e))?;
    let mut found: Option<String> = None;
    for line in BufReader::new(file).lines() {
        let line = line.map_err(|e| CoreError::io(path.display(), e))?;
        let Ok(v) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let Some(s) = v.get("session_id").and_then(Value::as_str) else {
            continue;
        };
        match &found {
            None => found = Some(s.to_string()),
            Some(f) if f != s => {
                return Err(CoreError::invalid(
                    "INVALID_OPTION",
                    "/session",
                    "the file holds several sessions: name one with --session",
                ))
            }
            _ => {}
        }
    }
    found.ok_or_else(|| CoreError::invalid("TRACE_INVALID", "", "the file holds no event"))
}

/// Recomputes an event's hash from its fields (SHA-256, else BLAKE3).
fn event_hash_holds(event: &Value) -> bool {
    let s = |k: &str| event.get(k).and_then(Value::as_str);
    let (Some(v), Some(id), Some(tid), Some(span), Some(sid), Some(ts), Some(ty), Some(prev)) = (
        s("trace_version"),
        s("event_id"),
        s("trace_id"),
        s("span_id"),
        s("session_id"),
        s("timestamp"),
        s("event_type"),
        s("previous_event_hash"),
    ) else {
        return false;
    };
    let (Some(seq), Some(payload), Some(hash)) = (
        event.get("sequence").and_then(Value::as_u64),
        event.get("payload").and_then(|p| to_canonical(p).ok()),
        hash_bytes(event, "event_hash"),
    ) else {
        return false;
    };
    let input = HashInput {
        trace_version: v,
        event_id: id,
        trace_id: tid,
        span_id: span,
        parent_span_id: s("parent_span_id"),
        session_id: sid,
        sequence: seq,
        timestamp: ts,
        event_type: ty,
        canonical_payload: &payload,
        previous_event_hash: prev,
    };
    [HashAlgorithm::Sha256, HashAlgorithm::Blake3]
        .iter()
        .any(|a| input.hash(*a) == hash)
}

fn checked_statement(key: &CheckpointKey, event: &Value, at: &str) -> Result<Statement> {
    let (st, signature) = statement_of(event, at)?;
    if st.key_id != key.key_id() || !key.verify(st.message().as_bytes(), &signature) {
        return Err(CoreError::invalid(
            "SIGNATURE_INVALID",
            at,
            format!(
                "the checkpoint is not signed by key {} (it names key {})",
                key.key_id(),
                st.key_id
            ),
        ));
    }
    if !event_hash_holds(event) {
        return Err(invalid(at, "the checkpoint event's own hash does not hold"));
    }
    Ok(st)
}

fn hash_list(v: &Value, key: &str) -> Result<Vec<Hash>> {
    let list = v
        .get(key)
        .and_then(Value::as_array)
        .ok_or_else(|| invalid(&format!("/{key}"), "missing or not a list"))?;
    list.iter()
        .enumerate()
        .map(|(i, h)| {
            h.as_str()
                .and_then(|t| hex::decode(t).ok())
                .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
                .ok_or_else(|| invalid(&format!("/{key}/{i}"), "not 64 hex digits"))
        })
        .collect()
}

fn count(v: &Value, key: &str) -> Result<u64> {
    v.get(key)
        .and_then(Value::as_u64)
        .ok_or_else(|| invalid(&format!("/{key}"), "missing or not a count"))
}

fn root_of(st: &Statement, at: &str) -> Result<Hash> {
    hex::decode(&st.merkle_root)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
        .ok_or_else(|| invalid(at, "merkle_root is not 64 hex digits"))
}

/// Checks a proof document offline; `Ok(description)` when it holds, the
/// typed reason (`PROOF_INVALID`, `SIGNATURE_INVALID`) when not.
pub fn verify_proof(proof: &Value, key: &CheckpointKey) -> Result<String> {
    match proof.get("proof_version").and_then(Value::as_str) {
        Some(INCLUSION) => verify_inclusion_doc(proof, key),
        Some(CONSISTENCY) => verify_consistency_doc(proof, key),
        other => Err(invalid(
            "/proof_version",
            format!("{other:?} is not {INCLUSION:?} or {CONSISTENCY:?}"),
        )),
    }
}

fn verify_inclusion_doc(proof: &Value, key: &CheckpointKey) -> Result<String> {
    let cp = proof
        .get("checkpoint")
        .ok_or_else(|| invalid("/checkpoint", "missing"))?;
    let st = checked_statement(key, cp, "/checkpoint")?;
    let event = proof
        .get("event")
        .ok_or_else(|| invalid("/event", "missing"))?;
    if !event_hash_holds(event) {
        return Err(invalid(
            "/event",
            "the event's hash does not match its fields",
        ));
    }
    let sid = event.get("session_id").and_then(Value::as_str);
    if sid != Some(st.session_id.to_string().as_str()) {
        return Err(invalid(
            "/event/session_id",
            "the event is of another session",
        ));
    }
    let (index, size) = (count(proof, "leaf_index")?, count(proof, "tree_size")?);
    let seq = count(event, "sequence")?;
    if size != st.tree_size || st.first_sequence.checked_add(index) != Some(seq) {
        return Err(invalid(
            "/leaf_index",
            "leaf_index and tree_size do not match the event's sequence and the checkpoint",
        ));
    }
    let leaf = hash_bytes(event, "event_hash").ok_or_else(|| invalid("/event", "no hash"))?;
    verify_inclusion(
        &leaf,
        index,
        size,
        &hash_list(proof, "audit_path")?,
        &root_of(&st, "/checkpoint")?,
    )
    .map_err(|e| invalid("/audit_path", e.to_string()))?;
    Ok(format!(
        "event {} (sequence {seq}) of session {} is in the tree of {size} events signed by key {} at {}",
        event.get("event_id").and_then(Value::as_str).unwrap_or("?"),
        st.session_id,
        st.key_id,
        st.signed_at
    ))
}

fn verify_consistency_doc(proof: &Value, key: &CheckpointKey) -> Result<String> {
    let get = |k: &str| {
        proof
            .get(k)
            .ok_or_else(|| invalid(&format!("/{k}"), "missing"))
    };
    let a = checked_statement(key, get("first")?, "/first")?;
    let b = checked_statement(key, get("second")?, "/second")?;
    if a.session_id != b.session_id || a.first_sequence != b.first_sequence {
        return Err(invalid(
            "/second",
            "the checkpoints are of different chains",
        ));
    }
    let (m, n) = (count(proof, "first_size")?, count(proof, "second_size")?);
    if m != a.tree_size || n != b.tree_size {
        return Err(invalid(
            "/first_size",
            "the sizes differ from the checkpoints'",
        ));
    }
    verify_consistency(
        m,
        n,
        &root_of(&a, "/first")?,
        &root_of(&b, "/second")?,
        &hash_list(proof, "proof")?,
    )
    .map_err(|e| invalid("/proof", e.to_string()))?;
    Ok(format!(
        "session {}: the tree of {n} events signed at {} extends the tree of {m} signed at {} (the chain only grew)",
        a.session_id, b.signed_at, a.signed_at
    ))
}
