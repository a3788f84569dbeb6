//! Signed checkpoints: `trace.checkpoint` events that the flush thread
//! seals into a session's chain when the runtime has a signing key. Each
//! one signs the chain's head and the RFC 6962 Merkle root over the event
//! hashes it covers (see `merkle`), so that a verifier holding the public
//! key can tell a rewritten chain (`checkpoint_mismatch`), a forged one
//! (`signature_invalid`) and a cut one (`incomplete`, `truncated`).
//!
//! The signed message is UTF-8 text, one field per line, each line ending
//! in `\n`:
//!
//! ```text
//! cra-trace-checkpoint/1
//! <session_id>
//! <first_sequence>
//! <tree_size>
//! <head_hash>
//! <merkle_root>
//! <signed_at>
//! <key_id>
//! <final: 1 or 0>
//! ```

use std::time::Duration;

use uuid::Uuid;

use crate::trace::payload::Payload;

/// The event type of a checkpoint (emitted by the runtime only).
pub const CHECKPOINT_EVENT: &str = "trace.checkpoint";

/// The first line of every signed message.
pub const MESSAGE_TAG: &str = "cra-trace-checkpoint/1";

/// When checkpoints are sealed (besides the final one of every ended
/// session, which is always sealed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointPolicy {
    /// After this many events of a session since its last checkpoint.
    pub every_events: u64,
    /// After this long since a session's last checkpoint, if it has new
    /// events (`None`: never by time).
    pub every: Option<Duration>,
    /// At every `flush()`, for each session with new events.
    pub at_flush: bool,
}

impl Default for CheckpointPolicy {
    fn default() -> Self {
        CheckpointPolicy {
            every_events: 1000,
            every: Some(Duration::from_secs(10)),
            at_flush: true,
        }
    }
}

/// What a checkpoint states (everything but its signature).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub session_id: Uuid,
    /// Sequence of the first event the tree covers (0 unless the chain was
    /// resumed from a store by this runtime).
    pub first_sequence: u64,
    /// Events covered: sequences `first_sequence .. first_sequence + tree_size`.
    pub tree_size: u64,
    /// `event_hash` of the last covered event.
    pub head_hash: String,
    /// RFC 6962 root over the covered events' hashes, hex.
    pub merkle_root: String,
    pub signed_at: String,
    pub key_id: String,
    /// The last checkpoint of an ended session.
    pub is_final: bool,
}

impl Statement {
    /// The bytes that are signed.
    pub fn message(&self) -> String {
        format!(
            "{MESSAGE_TAG}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n",
            self.session_id,
            self.first_sequence,
            self.tree_size,
            self.head_hash,
            self.merkle_root,
            self.signed_at,
            self.key_id,
            u8::from(self.is_final),
        )
    }

    /// The checkpoint event's canonical payload, with `signature`.
    pub fn payload(&self, signature: &str) -> Box<str> {
        let last = self.first_sequence + self.tree_size.saturating_sub(1);
        Payload::new()
            .int("event_count", self.tree_size as i64)
            .raw("final", if self.is_final { "true" } else { "false" })
            .int("first_sequence", self.first_sequence as i64)
            .str("head_hash", &self.head_hash)
            .str("key_id", &self.key_id)
            .str("merkle_root", &self.merkle_root)
            .int("sequence", last as i64)
            .str("session_id", &self.session_id.to_string())
            .str("signature", signature)
            .str("signed_at", &self.signed_at)
            .int("tree_size", self.tree_size as i64)
            .finish()
    }

    /// Reads a checkpoint payload: the statement and its signature, or why
    /// it is not one.
    pub fn parse(payload: &serde_json::Value) -> Result<(Statement, String), String> {
        let obj = payload.as_object().ok_or("the payload is not an object")?;
        let text = |k: &str| -> Result<String, String> {
            obj.get(k)
                .and_then(|v| v.as_str())
                .map(str::to_string)
                .ok_or_else(|| format!("`{k}` is missing or not a string"))
        };
        let int = |k: &str| -> Result<u64, String> {
            obj.get(k)
                .and_then(|v| v.as_u64())
                .ok_or_else(|| format!("`{k}` is missing or not a count"))
        };
        let session_id = Uuid::try_parse(&text("session_id")?)
            .map_err(|_| "`session_id` is not a UUID".to_string())?;
        let statement = Statement {
            session_id,
            first_sequence: int("first_sequence")?,
            tree_size: int("tree_size")?,
            head_hash: text("head_hash")?,
            merkle_root: text("merkle_root")?,
            signed_at: text("signed_at")?,
            key_id: text("key_id")?,
            is_final: obj
                .get("final")
                .and_then(|v| v.as_bool())
                .ok_or("`final` is missing or not a boolean")?,
        };
        if int("event_count")? != statement.tree_size {
            return Err("`event_count` differs from `tree_size`".into());
        }
        Ok((statement, text("signature")?))
    }
}
