//! Chain verification: walks a session's events and reports the first
//! fault with its index and kind. The algorithm is detected from event 0.

use crate::trace::hash::{HashAlgorithm, HashInput, GENESIS_HASH};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    InvalidGenesis,
    ChainBroken,
    SequenceGap,
    HashMismatch,
    SessionMismatch,
}

impl FaultKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::InvalidGenesis => "invalid_genesis",
            FaultKind::ChainBroken => "chain_broken",
            FaultKind::SequenceGap => "sequence_gap",
            FaultKind::HashMismatch => "hash_mismatch",
            FaultKind::SessionMismatch => "session_mismatch",
        }
    }
}

/// The first fault of a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub kind: FaultKind,
    /// Position of the faulty event within its chain (0-based).
    pub index: u64,
    pub message: String,
    /// 1-based line of the event in a file, when verifying a file.
    pub line: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainVerification {
    pub session_id: Option<String>,
    pub event_count: u64,
    /// Detected from event 0; `None` for an empty chain or when neither matched.
    pub algorithm: Option<HashAlgorithm>,
    pub fault: Option<Fault>,
    /// The sequence of the anchor the chain was verified from (its older
    /// events removed by retention); `None` when verified from genesis.
    pub anchored_at: Option<u64>,
}

impl ChainVerification {
    pub fn valid(&self) -> bool {
        self.fault.is_none()
    }
}

/// One event as the strings that were written.
pub struct EventText<'a> {
    pub input: HashInput<'a>,
    pub event_hash: &'a str,
}

/// Incremental verifier of one chain.
#[derive(Debug, Default)]
pub struct ChainVerifier {
    count: u64,
    algorithm: Option<HashAlgorithm>,
    session_id: Option<String>,
    trace_id: String,
    prev_hash: String,
    prev_sequence: u64,
    fault: Option<Fault>,
    /// Where a kept part of a longer chain starts: (sequence, previous hash).
    anchor: Option<(u64, String)>,
}

impl ChainVerifier {
    pub fn new() -> Self {
        ChainVerifier::default()
    }

    /// Verifies a chain whose older events were removed by retention: its
    /// first event must carry `sequence` and link to `previous_hash`.
    pub fn anchored(sequence: u64, previous_hash: &str) -> Self {
        ChainVerifier {
            anchor: Some((sequence, previous_hash.to_string())),
            ..ChainVerifier::default()
        }
    }

    pub fn is_faulty(&self) -> bool {
        self.fault.is_some()
    }

    /// Checks the next event of the chain.
    pub fn push(&mut self, ev: &EventText<'_>, line: Option<u64>) {
        let index = self.count;
        self.count += 1;
        if self.fault.is_some() {
            return;
        }
        if let Some((kind, message)) = self.check(ev, index) {
            self.fault = Some(Fault {
                kind,
                index,
                message,
                line,
            });
            return;
        }
        self.prev_hash.clear();
        self.prev_hash.push_str(ev.event_hash);
        self.prev_sequence = ev.input.sequence;
    }

    fn check(&mut self, ev: &EventText<'_>, index: u64) -> Option<(FaultKind, String)> {
        let inp = &ev.input;
        if index == 0 {
            self.session_id = Some(inp.session_id.to_string());
            self.trace_id = inp.trace_id.to_string();
            let (first_seq, first_prev) = match &self.anchor {
                Some((seq, prev)) => (*seq, prev.as_str()),
                None => (0, GENESIS_HASH),
            };
            if inp.previous_event_hash != first_prev {
                return Some((
                    FaultKind::InvalidGenesis,
                    if self.anchor.is_some() {
                        "the first kept event does not link to the recorded anchor hash".into()
                    } else {
                        "the first event's previous_event_hash is not 64 zeros".into()
                    },
                ));
            }
            if inp.sequence != first_seq {
                return Some((
                    FaultKind::SequenceGap,
                    format!(
                        "the first event has sequence {}, expected {first_seq}",
                        inp.sequence
                    ),
                ));
            }
            for alg in [HashAlgorithm::Sha256, HashAlgorithm::Blake3] {
                if hex_eq(&inp.hash(alg), ev.event_hash) {
                    self.algorithm = Some(alg);
                    return None;
                }
            }
            return Some((
                FaultKind::HashMismatch,
                "event_hash matches neither SHA-256 nor BLAKE3 of the event".into(),
            ));
        }
        if Some(inp.session_id) != self.session_id.as_deref() || inp.trace_id != self.trace_id {
            return Some((
                FaultKind::SessionMismatch,
                format!(
                    "session_id/trace_id changed to {}/{} inside the chain",
                    inp.session_id, inp.trace_id
                ),
            ));
        }
        if inp.sequence != self.prev_sequence.wrapping_add(1) {
            return Some((
                FaultKind::SequenceGap,
                format!("sequence {} follows {}", inp.sequence, self.prev_sequence),
            ));
        }
        if inp.previous_event_hash != self.prev_hash {
            return Some((
                FaultKind::ChainBroken,
                "previous_event_hash is not the prior event's event_hash".into(),
            ));
        }
        let alg = self.algorithm.unwrap_or(HashAlgorithm::Sha256);
        if !hex_eq(&inp.hash(alg), ev.event_hash) {
            return Some((
                FaultKind::HashMismatch,
                format!(
                    "event_hash differs from the recomputed {} hash",
                    alg.as_str()
                ),
            ));
        }
        None
    }

    pub fn finish(self) -> ChainVerification {
        ChainVerification {
            session_id: self.session_id,
            event_count: self.count,
            algorithm: self.algorithm,
            fault: self.fault,
            anchored_at: self.anchor.map(|(sequence, _)| sequence),
        }
    }
}

fn hex_eq(digest: &[u8; 32], text: &str) -> bool {
    let mut buf = [0u8; 64];
    hex::encode_to_slice(digest, &mut buf).is_ok() && buf == text.as_bytes()
}
