//! Redaction: what an execution's events may carry of secrets. Two tools,
//! used on every path that puts an executor's text or values in the trace:
//!
//! - [`redact_secrets`], a detector of secret-like strings (API keys,
//!   bearer tokens, `password=…` pairs, AWS keys, private key blocks,
//!   JWTs), each match replaced by `[REDACTED]`;
//! - [`recorded`], the parameters or result of an action as its atlas asks
//!   the trace to record them (`trace_parameters` / `trace_result`), with
//!   the action's `redact` pointers replaced by `[REDACTED:<tag>]`, the tag
//!   a keyed hash (HMAC-SHA-256 under the runtime's [`RedactionKey`], 16
//!   hex digits) so that equal values correlate within a runtime and
//!   cannot be guessed back without the key.

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, LazyLock};

use regex::{Captures, Regex};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::atlas::model::{TraceMode, TraceSpec};
use crate::error::{CoreError, Result};
use crate::json::canonical::to_canonical;
use crate::trace::hash::to_hex;

/// What a detected secret becomes.
pub const REDACTED: &str = "[REDACTED]";

/// The fewest bytes a caller's redaction key may have.
pub const MIN_KEY_BYTES: usize = 16;

/// The HMAC-SHA-256 key of a runtime's redaction tags, kept as its two
/// padded blocks. Its `Debug` never shows the key.
pub struct RedactionKey {
    inner: [u8; 64],
    outer: [u8; 64],
}

impl fmt::Debug for RedactionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RedactionKey(..)")
    }
}

impl RedactionKey {
    /// A key of 32 random bytes: tags correlate within this runtime only.
    pub fn random() -> Self {
        let bytes: [u8; 32] = rand::random();
        Self::padded(&bytes)
    }

    /// A caller's key (at least [`MIN_KEY_BYTES`]), so that tags stay the
    /// same across runs.
    pub fn new(bytes: &[u8]) -> Result<Self> {
        if bytes.len() < MIN_KEY_BYTES {
            return Err(CoreError::invalid(
                "INVALID_OPTION",
                "/redaction_key",
                format!(
                    "must be at least {MIN_KEY_BYTES} bytes, not {}",
                    bytes.len()
                ),
            ));
        }
        Ok(Self::padded(bytes))
    }

    fn padded(key: &[u8]) -> Self {
        let mut block = [0u8; 64];
        if key.len() > 64 {
            block[..32].copy_from_slice(&Sha256::digest(key));
        } else {
            block[..key.len()].copy_from_slice(key);
        }
        RedactionKey {
            inner: block.map(|b| b ^ 0x36),
            outer: block.map(|b| b ^ 0x5c),
        }
    }

    /// HMAC-SHA-256 (RFC 2104) of `data`.
    pub fn hmac(&self, data: &[u8]) -> [u8; 32] {
        let inner = Sha256::new()
            .chain_update(self.inner)
            .chain_update(data)
            .finalize();
        Sha256::new()
            .chain_update(self.outer)
            .chain_update(inner)
            .finalize()
            .into()
    }

    /// `[REDACTED:<tag>]`: the tag is the first 16 hex digits of the HMAC
    /// of the value's canonical JSON.
    pub fn marker(&self, v: &Value) -> String {
        let text = to_canonical(v).unwrap_or_else(|_| v.to_string());
        let hex = to_hex(&self.hmac(text.as_bytes()));
        format!("[REDACTED:{}]", &hex[..16])
    }
}

/// A runtime's redaction settings.
#[derive(Debug, Clone)]
pub struct Redaction {
    pub key: Arc<RedactionKey>,
    /// When set, an execute answer carries an executor's exception text as
    /// it was; the trace is redacted either way.
    pub expose_errors: bool,
}

impl Default for Redaction {
    fn default() -> Self {
        Redaction {
            key: Arc::new(RedactionKey::random()),
            expose_errors: false,
        }
    }
}

impl Redaction {
    /// The settings from the runtime's options: a caller's key, or a random one.
    pub fn new(key: Option<&[u8]>, expose_errors: bool) -> Result<Self> {
        let key = match key {
            Some(k) => RedactionKey::new(k)?,
            None => RedactionKey::random(),
        };
        Ok(Redaction {
            key: Arc::new(key),
            expose_errors,
        })
    }
}

/// How a rule's match is replaced.
enum Keep {
    /// The whole match becomes `[REDACTED]`.
    Nothing,
    /// Group 1 (a prefix such as `Bearer `) stays.
    Prefix,
    /// A `key = value` pair: the key stays, the value (group 2) is masked
    /// in its own quotes.
    Key,
}

struct Rule {
    re: Regex,
    keep: Keep,
}

/// Key names whose value is a secret (`password`, `db_password`,
/// `client_secret`, `auth_token`, `x-api-key`, ...).
const SECRET_KEY: &str = r"[A-Za-z0-9_.-]*(?:password|passwd|pwd|passphrase|secret|token|api[_-]?key|apikey|access[_-]?key|private[_-]?key|credentials?|authorization)[A-Za-z0-9_.-]*";

static RULES: LazyLock<Vec<Rule>> = LazyLock::new(|| {
    let rule = |re: &str, keep| Rule {
        re: Regex::new(re).expect("a valid redaction pattern"),
        keep,
    };
    vec![
        // Private key blocks, to their end line (or the end of the text).
        rule(
            r"(?s)-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\z)",
            Keep::Nothing,
        ),
        // key=value, key: value, "key": "value", 'key': 'value' (also JSON
        // escaped in a string); an authorization scheme before the value
        // goes with it.
        rule(
            &format!(
                r#"(?i)((?:\\?["'])?\b{SECRET_KEY}(?:\\?["'])?\s*[:=]\s*)(?:(?:bearer|basic|digest|token)\s+)?("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|\\"(?:[^"\\]|\\[^"])*\\"|\[REDACTED[^\]]*\]|[^\s,;&'"(){{}}\[\]]+)"#
            ),
            Keep::Key,
        ),
        // JSON Web Tokens.
        rule(
            r"\beyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*",
            Keep::Nothing,
        ),
        // Bearer tokens in free text.
        rule(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/-]{8,}=*", Keep::Prefix),
        // API keys: OpenAI/Anthropic style, Stripe, GitHub, Slack, Google.
        rule(r"\bsk-[A-Za-z0-9_-]{6,}", Keep::Nothing),
        rule(r"\b[rsp]k_(?:live|test)_[A-Za-z0-9]{6,}", Keep::Nothing),
        rule(
            r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})",
            Keep::Nothing,
        ),
        rule(r"\bxox[abposr]-[A-Za-z0-9-]{8,}", Keep::Nothing),
        rule(r"\bAIza[0-9A-Za-z_-]{30,}", Keep::Nothing),
        // AWS access key ids, and a secret key written after its name.
        rule(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b", Keep::Nothing),
        rule(
            r#"(?i)(aws_?secret[A-Za-z_]*["']?\s*[:=]?\s*["']?)[A-Za-z0-9/+]{40}"#,
            Keep::Prefix,
        ),
    ]
});

/// `text` with every secret-like string replaced by `[REDACTED]`
/// (borrowed when nothing matched).
pub fn redact_secrets(text: &str) -> Cow<'_, str> {
    let mut out = Cow::Borrowed(text);
    for rule in RULES.iter() {
        if !rule.re.is_match(&out) {
            continue;
        }
        let replaced = rule
            .re
            .replace_all(&out, |c: &Captures<'_>| match rule.keep {
                Keep::Nothing => REDACTED.to_string(),
                Keep::Prefix => format!("{}{REDACTED}", &c[1]),
                Keep::Key => {
                    let value = &c[2];
                    let masked = if value.starts_with("[REDACTED") {
                        value.to_string()
                    } else if value.starts_with("\\\"") {
                        format!("\\\"{REDACTED}\\\"")
                    } else if value.starts_with('"') {
                        format!("\"{REDACTED}\"")
                    } else if value.starts_with('\'') {
                        format!("'{REDACTED}'")
                    } else {
                        REDACTED.to_string()
                    };
                    format!("{}{masked}", &c[1])
                }
            })
            .into_owned();
        out = Cow::Owned(replaced);
    }
    out
}

/// Replaces what each pointer (unescaped tokens; `*` matches every member
/// or element) finds in `v` by its keyed marker. A pointer that finds
/// nothing changes nothing.
pub fn redact_pointers(v: &mut Value, pointers: &[Vec<String>], key: &RedactionKey) {
    for tokens in pointers {
        redact_at(v, tokens, key);
    }
}

fn redact_at(v: &mut Value, tokens: &[String], key: &RedactionKey) {
    let Some((first, rest)) = tokens.split_first() else {
        if !v.as_str().is_some_and(|s| s.starts_with("[REDACTED:")) {
            *v = Value::String(key.marker(v));
        }
        return;
    };
    match v {
        Value::Object(m) if first == "*" => m.values_mut().for_each(|c| redact_at(c, rest, key)),
        Value::Object(m) => {
            if let Some(c) = m.get_mut(first.as_str()) {
                redact_at(c, rest, key);
            }
        }
        Value::Array(a) if first == "*" => a.iter_mut().for_each(|c| redact_at(c, rest, key)),
        Value::Array(a) => {
            // An array index: decimal, no leading zero (RFC 6901).
            let index = (first == "0" || !first.starts_with('0'))
                .then(|| first.parse::<usize>().ok())
                .flatten();
            if let Some(c) = index.and_then(|i| a.get_mut(i)) {
                redact_at(c, rest, key);
            }
        }
        _ => {}
    }
}

/// Every string in `v` through [`redact_secrets`] (keys stay as they are).
pub fn redact_strings(v: &mut Value) {
    match v {
        Value::String(s) => {
            if let Cow::Owned(r) = redact_secrets(s) {
                *s = r;
            }
        }
        Value::Array(a) => a.iter_mut().for_each(redact_strings),
        Value::Object(m) => m.values_mut().for_each(redact_strings),
        _ => {}
    }
}

/// The canonical JSON a trace records of `v` under `mode`: nothing for
/// `hash`; for `redacted`, `v` with `spec`'s pointers replaced by keyed
/// markers and the detector run over every remaining string; for `full`,
/// `v` as given.
pub fn recorded(
    v: &Value,
    mode: TraceMode,
    spec: &TraceSpec,
    key: &RedactionKey,
) -> Option<String> {
    match mode {
        TraceMode::Hash => None,
        TraceMode::Full => to_canonical(v).ok(),
        TraceMode::Redacted => {
            let mut copy = v.clone();
            redact_pointers(&mut copy, &spec.redact, key);
            redact_strings(&mut copy);
            to_canonical(&copy).ok()
        }
    }
}

#[cfg(test)]
#[path = "redact_tests.rs"]
mod tests;
