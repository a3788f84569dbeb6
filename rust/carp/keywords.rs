//! Keyword conditions of context packs: the request's goal and hints are
//! lowered once per resolve (on the stack when short and ASCII) and
//! searched for each pack's lower-cased keywords.

use std::ops::Deref;

use memchr::memmem::Finder;
use smallvec::SmallVec;

/// Haystacks shorter than this are searched byte by byte: the SIMD
/// searcher's setup costs more than the whole scan.
const SHORT: usize = 64;

/// Text in lower case: borrowed when lowering changes nothing.
pub enum Lowered<'a> {
    Same(&'a str),
    Ascii(SmallVec<[u8; 128]>),
    Other(String),
}

impl Deref for Lowered<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Lowered::Same(s) => s.as_bytes(),
            Lowered::Ascii(b) => b,
            Lowered::Other(s) => s.as_bytes(),
        }
    }
}

/// `text` as `str::to_lowercase` has it.
pub fn lower(text: &str) -> Lowered<'_> {
    if !text.is_ascii() {
        return Lowered::Other(text.to_lowercase());
    }
    if !text.bytes().any(|b| b.is_ascii_uppercase()) {
        return Lowered::Same(text);
    }
    let mut bytes = SmallVec::from_slice(text.as_bytes());
    bytes.make_ascii_lowercase();
    Lowered::Ascii(bytes)
}

/// Whether `word`'s needle occurs in `hay`.
pub fn contains(hay: &[u8], word: &Finder<'_>) -> bool {
    if hay.len() >= SHORT {
        return word.find(hay).is_some();
    }
    let needle = word.needle();
    let Some((&first, rest)) = needle.split_first() else {
        return true;
    };
    if hay.len() < needle.len() {
        return false;
    }
    (0..=hay.len() - needle.len()).any(|i| hay[i] == first && &hay[i + 1..i + needle.len()] == rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowering_matches_to_lowercase_and_copies_only_when_needed() {
        for text in [
            "refund order 42",
            "Refund ORDER",
            "ÉCOLE café",
            "straße",
            "",
            "ΑΣ",
        ] {
            assert_eq!(&*lower(text), text.to_lowercase().as_bytes(), "{text}");
        }
        assert!(matches!(lower("refund order"), Lowered::Same(_)));
        assert!(matches!(lower("Refund"), Lowered::Ascii(_)));
        assert!(matches!(lower(&"A".repeat(500)), Lowered::Ascii(_)));
    }

    #[test]
    fn short_and_long_haystacks_agree_with_the_finder() {
        let words = ["", "a", "delete", "remove", "résumé", "aab", "xyz"];
        let mut hays: Vec<String> = vec![
            "".into(),
            "a".into(),
            "please delete it".into(),
            "remov".into(),
            "un résumé".into(),
            "aaab".into(),
        ];
        hays.push(format!("{}delete", "x".repeat(70)));
        hays.push(format!("{}remov", "y".repeat(80)));
        hays.push("ab".repeat(SHORT / 2 - 1) + "aab");
        for w in words {
            let finder = Finder::new(w);
            for h in &hays {
                let expected = finder.find(h.as_bytes()).is_some();
                assert_eq!(contains(h.as_bytes(), &finder), expected, "{w:?} in {h:?}");
            }
        }
    }
}
