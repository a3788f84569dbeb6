//! Time: the clock the runtime reads and the one timestamp format it writes
//! (RFC 3339 UTC, six fractional digits, `Z`).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};

use crate::error::{CoreError, Result};

/// Microseconds since the Unix epoch.
pub type Micros = i64;

/// Where the runtime reads the time: every timestamp, TTL and window.
pub trait Clock: Send + Sync {
    fn now_micros(&self) -> Micros;
}

/// The operating system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[inline]
    fn now_micros(&self) -> Micros {
        // Straight from the OS clock: no calendar arithmetic on the hot path.
        match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => d.as_micros() as Micros,
            Err(e) => -(e.duration().as_micros() as Micros),
        }
    }
}

/// A clock that moves only when told to, for deterministic tests.
#[derive(Debug)]
pub struct ManualClock {
    now: AtomicI64,
}

impl ManualClock {
    pub fn new(start: Micros) -> Self {
        ManualClock {
            now: AtomicI64::new(start),
        }
    }

    pub fn advance(&self, micros: Micros) {
        self.now.fetch_add(micros, Ordering::SeqCst);
    }

    pub fn set(&self, micros: Micros) {
        self.now.store(micros, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_micros(&self) -> Micros {
        self.now.load(Ordering::SeqCst)
    }
}

pub type SharedClock = Arc<dyn Clock>;

/// `2026-11-21T20:41:23.123456Z` for a time in microseconds.
pub fn format_timestamp(micros: Micros) -> String {
    match DateTime::<Utc>::from_timestamp_micros(micros) {
        Some(t) => t.to_rfc3339_opts(SecondsFormat::Micros, true),
        None => "1970-01-01T00:00:00.000000Z".to_string(),
    }
}

/// A timestamp in the one written form: `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Stamp([u8; 27]);

impl Stamp {
    pub fn as_str(&self) -> &str {
        // SAFETY: a stamp is made only by `StampCache::stamp`, from ASCII
        // digits and the ASCII prefix of a formatted timestamp.
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }
}

impl std::ops::Deref for Stamp {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl std::fmt::Debug for Stamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Formats timestamps, reusing the date-and-second part while it holds.
#[derive(Default)]
pub struct StampCache {
    second: Option<i64>,
    prefix: [u8; 20],
}

impl StampCache {
    pub fn stamp(&mut self, micros: Micros) -> Stamp {
        let second = micros.div_euclid(1_000_000);
        if self.second != Some(second) {
            let full = format_timestamp(second * 1_000_000);
            match full.as_bytes().get(..20) {
                Some(p) if full.len() == 27 => self.prefix.copy_from_slice(p),
                _ => self.prefix.copy_from_slice(b"1970-01-01T00:00:00."),
            }
            self.second = Some(second);
        }
        let mut out = [0u8; 27];
        out[..20].copy_from_slice(&self.prefix);
        let mut frac = micros.rem_euclid(1_000_000);
        for i in (20..26).rev() {
            out[i] = b'0' + (frac % 10) as u8;
            frac /= 10;
        }
        out[26] = b'Z';
        Stamp(out)
    }
}

/// Reads an RFC 3339 timestamp with any offset and precision.
pub fn parse_timestamp(text: &str, path: &str) -> Result<Micros> {
    if let Some(t) = parse_own_layout(text) {
        return Ok(t);
    }
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc).timestamp_micros())
        .map_err(|e| {
            CoreError::invalid(
                "INVALID_REQUEST",
                path,
                format!("{text:?} is not an RFC 3339 timestamp ({e})"),
            )
        })
}

/// The layout the runtime writes (`YYYY-MM-DDTHH:MM:SS.ffffffZ`, which
/// is what requests built by `cra` carry), read without the general RFC
/// 3339 parser; `None` for anything else (other precisions, offsets, a
/// leap second), which the general parser then reads.
fn parse_own_layout(text: &str) -> Option<Micros> {
    let b = text.as_bytes();
    let layout = b.len() == 27
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'.'
        && b[26] == b'Z';
    if !layout {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<u32> {
        b[from..to].iter().try_fold(0u32, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    let date = NaiveDate::from_ymd_opt(num(0, 4)? as i32, num(5, 7)?, num(8, 10)?)?;
    let sec = num(17, 19)?;
    if sec > 59 {
        return None;
    }
    let t = date.and_hms_micro_opt(num(11, 13)?, num(14, 16)?, sec, num(20, 26)?)?;
    Some(t.and_utc().timestamp_micros())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_own_layout_reads_as_the_general_parser_does() {
        let general = |t: &str| {
            DateTime::parse_from_rfc3339(t)
                .ok()
                .map(|t| t.with_timezone(&Utc).timestamp_micros())
        };
        let mut texts: Vec<String> = [
            "2024-02-29T23:59:59.999999Z",
            "2023-02-29T00:00:00.000000Z",
            "0000-01-01T00:00:00.000000Z",
            "9999-12-31T23:59:59.999999Z",
            "2024-12-28T24:00:00.000000Z",
            "2024-12-28T12:60:00.000000Z",
            "2024-12-28T12:00:60.000000Z",
            "2024-13-01T00:00:00.000000Z",
            "2024-00-10T00:00:00.000000Z",
            "2024-12-28T12:00:00.00025xZ",
            "2024-12-28t12:00:00.000250Z",
            "+024-12-28T12:00:00.000250Z",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut m: i64 = 1;
        for _ in 0..2_000 {
            m = m
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            texts.push(format_timestamp(m.rem_euclid(253_402_300_799_999_999)));
        }
        for t in &texts {
            let own = parse_own_layout(t);
            if own.is_some() {
                assert_eq!(own, general(t), "{t}");
            }
            assert_eq!(parse_timestamp(t, "").ok(), general(t), "{t}");
        }
        assert!(parse_own_layout("2024-12-28T12:00:00.000250Z").is_some());
    }

    #[test]
    fn six_digits_and_z() {
        assert_eq!(
            format_timestamp(1_735_387_200_000_250),
            "2024-12-28T12:00:00.000250Z"
        );
        assert_eq!(format_timestamp(0), "1970-01-01T00:00:00.000000Z");
    }

    #[test]
    fn the_cache_agrees_with_the_formatter() {
        let mut c = StampCache::default();
        for m in [
            0,
            1,
            999_999,
            1_000_000,
            1_735_387_200_000_250,
            1_735_387_200_999_999,
            1_735_387_201_000_000,
            -1,
        ] {
            assert_eq!(c.stamp(m).as_str(), format_timestamp(m), "{m}");
        }
    }

    #[test]
    fn offsets_are_normalised() {
        let a = parse_timestamp("2024-12-28T13:00:00.5+01:00", "/timestamp").unwrap();
        assert_eq!(format_timestamp(a), "2024-12-28T12:00:00.500000Z");
        assert!(parse_timestamp("yesterday", "/timestamp").is_err());
    }
}
