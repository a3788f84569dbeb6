//! The TRACE/1.0 event hash: SHA-256 by default, BLAKE3 as the option.

use sha2::{Digest, Sha256};

use crate::error::{CoreError, Result};

/// The `previous_event_hash` of every chain's first event.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashAlgorithm {
    Sha256,
    Blake3,
}

impl HashAlgorithm {
    pub fn parse(name: &str) -> Result<Self> {
        match name.to_ascii_lowercase().as_str() {
            "sha256" | "sha-256" => Ok(HashAlgorithm::Sha256),
            "blake3" => Ok(HashAlgorithm::Blake3),
            _ => Err(CoreError::invalid(
                "INVALID_OPTION",
                "/hash_algorithm",
                format!("unknown hash algorithm {name:?} (use \"sha256\" or \"blake3\")"),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            HashAlgorithm::Sha256 => "sha256",
            HashAlgorithm::Blake3 => "blake3",
        }
    }

    pub fn hasher(self) -> Hasher {
        match self {
            HashAlgorithm::Sha256 => Hasher::Sha256(Sha256::new()),
            HashAlgorithm::Blake3 => Hasher::Blake3(Box::new(blake3::Hasher::new())),
        }
    }

    /// Digest of `bytes` (used for `parameters_hash` and `result_hash`).
    pub fn digest(self, bytes: &[u8]) -> [u8; 32] {
        let mut h = self.hasher();
        h.update(bytes);
        h.finish()
    }
}

/// An incremental hasher of either algorithm.
pub enum Hasher {
    Sha256(Sha256),
    Blake3(Box<blake3::Hasher>),
}

impl Hasher {
    #[inline]
    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Blake3(h) => {
                h.update(bytes);
            }
        }
    }

    pub fn finish(self) -> [u8; 32] {
        match self {
            Hasher::Sha256(h) => h.finalize().into(),
            Hasher::Blake3(h) => *h.finalize().as_bytes(),
        }
    }
}

/// The fields of an event that its hash covers, as the strings written.
pub struct HashInput<'a> {
    pub trace_version: &'a str,
    pub event_id: &'a str,
    pub trace_id: &'a str,
    pub span_id: &'a str,
    pub parent_span_id: Option<&'a str>,
    pub session_id: &'a str,
    pub sequence: u64,
    pub timestamp: &'a str,
    pub event_type: &'a str,
    pub canonical_payload: &'a str,
    pub previous_event_hash: &'a str,
}

impl HashInput<'_> {
    /// `H(trace_version ‖ event_id ‖ … ‖ canonical(payload) ‖ previous_event_hash)`.
    pub fn hash(&self, algorithm: HashAlgorithm) -> [u8; 32] {
        let mut h = algorithm.hasher();
        let mut seq = itoa::Buffer::new();
        for part in [
            self.trace_version,
            self.event_id,
            self.trace_id,
            self.span_id,
            self.parent_span_id.unwrap_or(""),
            self.session_id,
        ] {
            h.update(part.as_bytes());
        }
        h.update(seq.format(self.sequence).as_bytes());
        for part in [
            self.timestamp,
            self.event_type,
            self.canonical_payload,
            self.previous_event_hash,
        ] {
            h.update(part.as_bytes());
        }
        h.finish()
    }
}

/// Lower-case hex of a digest.
pub fn to_hex(digest: &[u8; 32]) -> String {
    let mut out = [0u8; 64];
    hex::encode_to_slice(digest, &mut out).expect("64 bytes hold 32 in hex");
    String::from_utf8(out.to_vec()).expect("hex digits are ASCII")
}

/// Parses 64 hex digits (either case) into a digest.
pub fn from_hex(text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}
