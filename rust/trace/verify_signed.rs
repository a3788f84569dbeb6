//! Checking a chain's signed checkpoints with a public key: each
//! `trace.checkpoint` must be signed by the key (`signature_invalid`) and
//! state exactly the chain before it (`checkpoint_mismatch`): its session,
//! where its tree starts, how many events it covers, the last one's hash
//! and the Merkle root over their hashes. At the end, an ended session must
//! close with its final checkpoint, and events after the last checkpoint
//! of an open session are an unsigned tail (both `incomplete`). A chain cut
//! exactly after a checkpoint looks like an open session with nothing
//! unsigned: only a copy of a later checkpoint kept elsewhere shows that.

use crate::trace::checkpoint::{Statement, CHECKPOINT_EVENT};
use crate::trace::hash::to_hex;
use crate::trace::merkle::Accumulator;
use crate::trace::signing::CheckpointKey;

/// What is wrong with a chain's signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureFaultKind {
    SignatureInvalid,
    CheckpointMismatch,
    Incomplete,
    Truncated,
}

impl SignatureFaultKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SignatureFaultKind::SignatureInvalid => "signature_invalid",
            SignatureFaultKind::CheckpointMismatch => "checkpoint_mismatch",
            SignatureFaultKind::Incomplete => "incomplete",
            SignatureFaultKind::Truncated => "truncated",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureFault {
    pub kind: SignatureFaultKind,
    /// The sequence of the event it is about (a checkpoint, or the last).
    pub sequence: Option<u64>,
    pub message: String,
}

/// A chain's signatures, checked.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SignatureReport {
    /// Checkpoints found, and how many of them verified.
    pub checkpoints: u64,
    pub valid_checkpoints: u64,
    /// Events covered by the last valid checkpoint (its tree size, plus
    /// the checkpoint event itself).
    pub signed_events: u64,
    pub events: u64,
    /// Events after the last valid checkpoint (an open session's tail).
    pub unsigned_tail: u64,
    /// The session has `session.ended`.
    pub ended: bool,
    /// Its last event is a valid final checkpoint.
    pub closed: bool,
    /// Valid checkpoints whose Merkle root could not be recomputed: the
    /// chain was read from after the start of their tree (retention).
    pub roots_unchecked: u64,
    pub faults: Vec<SignatureFault>,
}

impl SignatureReport {
    /// No fault: every checkpoint verifies, and every event is covered by
    /// one (an ended session closes with its final checkpoint).
    pub fn valid(&self) -> bool {
        self.faults.is_empty()
    }
}

/// Checks one chain's checkpoints, event by event, in constant memory.
pub struct SignatureChecker<'k> {
    key: &'k CheckpointKey,
    session_id: Option<String>,
    first_sequence: Option<u64>,
    tree: Accumulator,
    last_hash: [u8; 32],
    last_sequence: u64,
    /// The last event was a valid final checkpoint.
    closed: bool,
    /// A checkpoint kept elsewhere (a witness's copy), checked against the
    /// chain when the chain reaches its size: `None` until then.
    witness: Option<(Statement, Option<bool>)>,
    report: SignatureReport,
}

impl<'k> SignatureChecker<'k> {
    pub fn new(key: &'k CheckpointKey) -> Self {
        SignatureChecker {
            key,
            session_id: None,
            first_sequence: None,
            tree: Accumulator::new(),
            last_hash: [0; 32],
            last_sequence: 0,
            closed: false,
            witness: None,
            report: SignatureReport::default(),
        }
    }

    /// Also checks the chain against a checkpoint kept elsewhere: one that
    /// covers more events than the chain holds proves events were removed
    /// from its end (`truncated`); one that states another root or head for
    /// the same events proves a rewrite (`checkpoint_mismatch`).
    pub fn expect(&mut self, statement: Statement, signature: &str) {
        if statement.key_id != self.key.key_id()
            || !self.key.verify(statement.message().as_bytes(), signature)
        {
            let msg = format!(
                "the given checkpoint of {} events is not signed by key {}",
                statement.tree_size,
                self.key.key_id()
            );
            return self.fault(SignatureFaultKind::SignatureInvalid, None, msg);
        }
        self.witness = Some((statement, None));
    }

    /// The next event of the chain (which the chain verifier accepted),
    /// its hash as hex.
    pub fn push(
        &mut self,
        session_id: &str,
        sequence: u64,
        event_type: &str,
        payload: &str,
        event_hash: &str,
    ) {
        let mut hash = [0u8; 32];
        if hex::decode_to_slice(event_hash, &mut hash).is_err() {
            hash = [0; 32]; // the chain verifier has refused it already
        }
        self.push_hash(session_id, sequence, event_type, payload, &hash);
    }

    /// `push` with the event's hash as bytes.
    pub fn push_hash(
        &mut self,
        session_id: &str,
        sequence: u64,
        event_type: &str,
        payload: &str,
        event_hash: &[u8; 32],
    ) {
        if self.session_id.is_none() {
            self.session_id = Some(session_id.to_string());
            self.first_sequence = Some(sequence);
        }
        self.report.events += 1;
        self.closed = false;
        if event_type == "session.ended" {
            self.report.ended = true;
        }
        if event_type == CHECKPOINT_EVENT {
            self.check(sequence, payload);
        }
        self.tree.push(event_hash);
        self.last_hash = *event_hash;
        self.last_sequence = sequence;
        if let Some((st, seen @ None)) = &mut self.witness {
            if self.tree.size() == st.tree_size {
                *seen = Some(
                    st.first_sequence == self.first_sequence.unwrap_or(0)
                        && st.head_hash == to_hex(event_hash)
                        && st.merkle_root == to_hex(&self.tree.root()),
                );
            }
        }
    }

    fn fault(&mut self, kind: SignatureFaultKind, sequence: Option<u64>, message: String) {
        self.report.faults.push(SignatureFault {
            kind,
            sequence,
            message,
        });
    }

    fn check(&mut self, sequence: u64, payload: &str) {
        use SignatureFaultKind::*;
        self.report.checkpoints += 1;
        let parsed = serde_json::from_str(payload)
            .map_err(|e| e.to_string())
            .and_then(|v| Statement::parse(&v));
        let (st, signature) = match parsed {
            Ok(x) => x,
            Err(why) => {
                let msg = format!("checkpoint at sequence {sequence}: {why}");
                return self.fault(CheckpointMismatch, Some(sequence), msg);
            }
        };
        if st.key_id != self.key.key_id() || !self.key.verify(st.message().as_bytes(), &signature) {
            let msg = if st.key_id != self.key.key_id() {
                format!(
                    "checkpoint at sequence {sequence} is signed by key {}, not {}",
                    st.key_id,
                    self.key.key_id()
                )
            } else {
                format!("checkpoint at sequence {sequence}: the signature does not verify")
            };
            return self.fault(SignatureInvalid, Some(sequence), msg);
        }
        let first = self.first_sequence.unwrap_or(0);
        let size = self.tree.size();
        // A chain read from after its tree's start (its older events removed
        // by retention) cannot recompute the root; the signed head still
        // binds every event before it through the verified links.
        let cut = st.first_sequence < first;
        let root = if cut {
            st.merkle_root.clone()
        } else {
            to_hex(&self.tree.root())
        };
        let mismatch = if Some(st.session_id.to_string()) != self.session_id {
            Some(format!("names session {}", st.session_id))
        } else if cut && st.first_sequence.checked_add(st.tree_size) != Some(sequence) {
            Some(format!(
                "covers {} events from sequence {}, which does not end before it",
                st.tree_size, st.first_sequence
            ))
        } else if !cut && (st.first_sequence != first || st.tree_size != size) {
            Some(format!(
                "covers {} events from sequence {}, but {size} events from {first} precede it",
                st.tree_size, st.first_sequence
            ))
        } else if !(cut && self.report.events == 1) && st.head_hash != to_hex(&self.last_hash) {
            // (Unless it is the first event read of a cut chain: its head is
            // before the cut, and the chain verifier checked that link.)
            Some("its head_hash is not the hash of the event before it".into())
        } else if st.merkle_root != root {
            Some("its merkle_root differs from the root over the events it covers".into())
        } else {
            None
        };
        if let Some(why) = mismatch {
            let msg = format!("checkpoint at sequence {sequence}: {why}; the chain was rewritten");
            return self.fault(CheckpointMismatch, Some(sequence), msg);
        }
        self.report.valid_checkpoints += 1;
        self.report.signed_events = size + 1;
        if cut {
            self.report.roots_unchecked += 1;
        }
        self.closed = st.is_final;
    }

    pub fn finish(mut self) -> SignatureReport {
        if let Some((st, seen)) = self.witness.take() {
            match seen {
                None => {
                    let msg = format!(
                        "a checkpoint signed for {} events exists, but the chain holds {}: events were removed from its end",
                        st.tree_size, self.report.events
                    );
                    self.fault(SignatureFaultKind::Truncated, Some(self.last_sequence), msg);
                }
                Some(false) => {
                    let at = st.first_sequence + st.tree_size.saturating_sub(1);
                    let msg = format!(
                        "the given checkpoint states another head or root for the first {} events: the chain was rewritten",
                        st.tree_size
                    );
                    self.fault(SignatureFaultKind::CheckpointMismatch, Some(at), msg);
                }
                Some(true) => {}
            }
        }
        let r = &mut self.report;
        r.unsigned_tail = r.events - r.signed_events.min(r.events);
        r.closed = self.closed;
        if !r.ended && r.unsigned_tail > 0 {
            let msg = format!(
                "the last {} events are covered by no checkpoint: an open session's unsigned tail, or a chain cut after its last checkpoint",
                r.unsigned_tail
            );
            let seq = Some(self.last_sequence);
            self.fault(SignatureFaultKind::Incomplete, seq, msg);
            return self.report;
        }
        if r.ended && !self.closed {
            let msg = if r.unsigned_tail > 0 {
                format!(
                    "the session ended but its last {} events are not covered by a final checkpoint",
                    r.unsigned_tail
                )
            } else {
                "the session ended but its final checkpoint is missing".into()
            };
            let seq = Some(self.last_sequence);
            self.fault(SignatureFaultKind::Incomplete, seq, msg);
        }
        self.report
    }
}
