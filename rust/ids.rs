//! Identifiers: every id the runtime mints is a lower-case UUIDv7.

use rand::Rng;
use uuid::{Builder, Uuid};

use crate::error::{CoreError, Result};
use crate::time::Micros;

/// Hashing of UUID keys: foldhash's seeded quality hasher, several times
/// faster than SipHash on 16 bytes and still seeded per map, since most ids
/// come from callers.
pub type IdHasher = foldhash::quality::RandomState;
/// A map keyed by UUIDs.
pub type IdMap<V> = std::collections::HashMap<Uuid, V, IdHasher>;
/// A map the hot path looks names up in (action, atlas and capability ids,
/// limit counters), with the same hasher.
pub type FastMap<K, V> = std::collections::HashMap<K, V, IdHasher>;
/// A set of UUIDs.
pub type IdSet = std::collections::HashSet<Uuid, IdHasher>;

/// A new UUIDv7 whose time field is `micros` (the runtime clock's reading).
pub fn new_v7(micros: Micros) -> Uuid {
    let mut random = [0u8; 10];
    rand::rng().fill(&mut random);
    Builder::from_unix_timestamp_millis(micros.max(0) as u64 / 1000, &random).into_uuid()
}

/// Parses a caller-supplied UUID (any version), naming `path` on failure.
pub fn parse_uuid(text: &str, path: &str) -> Result<Uuid> {
    Uuid::try_parse(text)
        .map_err(|_| CoreError::invalid("INVALID_REQUEST", path, format!("{text:?} is not a UUID")))
}

/// Lower-case hyphenated text of a UUID, without allocating.
pub fn write_uuid(out: &mut Vec<u8>, id: &Uuid) {
    let mut buf = [0u8; 36];
    out.extend_from_slice(id.hyphenated().encode_lower(&mut buf).as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_ids_are_v7_lower_case() {
        let id = new_v7(1_735_387_200_000_000);
        let text = id.to_string();
        assert_eq!(id.get_version_num(), 7);
        assert_eq!(text, text.to_lowercase());
        assert_eq!(&text[..13], "01940d23-3a00");
    }
}
