//! The options object of `new Runtime({...})` (as JSON) read into the
//! core's `RuntimeConfig`; camelCase names, checked like Python's.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::runtime::state::{Durability, RuntimeConfig};
use crate::trace::chain::Checkpointing;
use crate::trace::checkpoint::CheckpointPolicy;
use crate::trace::hash::HashAlgorithm;
use crate::trace::recorder::Overflow;
use crate::trace::signing::CheckpointSigner;

use super::errors::{invalid, IntoJsResult};

const KNOWN: &[&str] = &[
    "traceFile",
    "hashAlgorithm",
    "signingKey",
    "checkpointEvents",
    "checkpointSeconds",
    "queueCapacity",
    "overflow",
    "memoryLimit",
    "clockSkewSeconds",
    "maxResolutions",
    "durability",
    "sessionIdleSeconds",
    "sessionMaxSeconds",
    "heartbeatIntervalSeconds",
    "heartbeatMissesAllowed",
];

struct Reader<'a>(&'a Map<String, Value>);

impl Reader<'_> {
    fn text(&self, name: &str) -> napi::Result<Option<&str>> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(invalid(
                "INVALID_OPTION",
                &format!("/{name}"),
                "must be a string",
            )),
        }
    }

    fn count(&self, name: &str, least: u64) -> napi::Result<Option<u64>> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => match v.as_u64() {
                Some(n) if n >= least => Ok(Some(n)),
                _ => Err(invalid(
                    "INVALID_OPTION",
                    &format!("/{name}"),
                    format!("must be an integer >= {least}"),
                )),
            },
        }
    }

    /// Seconds > 0 (or >= 0 when `zero_ok`); `Ok(None)` for null.
    fn seconds(&self, name: &str, zero_ok: bool) -> napi::Result<Option<Option<f64>>> {
        match self.0.get(name) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(v) => match v.as_f64() {
                Some(s) if s.is_finite() && (s > 0.0 || (zero_ok && s == 0.0)) => Ok(Some(Some(s))),
                _ => Err(invalid(
                    "INVALID_OPTION",
                    &format!("/{name}"),
                    "must be a number of seconds or null",
                )),
            },
        }
    }
}

/// The core settings of the options given as JSON text.
pub fn config(json: &str) -> napi::Result<RuntimeConfig> {
    let v: Value = serde_json::from_str(json)
        .map_err(|e| invalid("INVALID_OPTION", "", format!("options are not JSON: {e}")))?;
    let Value::Object(map) = v else {
        return Err(invalid("INVALID_OPTION", "", "options must be an object"));
    };
    if let Some(k) = map.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(invalid(
            "INVALID_OPTION",
            &format!("/{k}"),
            format!("unknown option {k:?}; known: {}", KNOWN.join(", ")),
        ));
    }
    let r = Reader(&map);
    let mut c = RuntimeConfig {
        trace_file: r.text("traceFile")?.map(PathBuf::from),
        ..RuntimeConfig::default()
    };
    if let Some(a) = r.text("hashAlgorithm")? {
        c.recorder.algorithm = HashAlgorithm::parse(a).js()?;
    }
    if let Some(o) = r.text("overflow")? {
        c.recorder.overflow = Overflow::parse(o).js()?;
    }
    if let Some(d) = r.text("durability")? {
        c.durability = Durability::parse(d).js()?;
    }
    if let Some(n) = r.count("queueCapacity", 1)? {
        c.recorder.capacity = n as usize;
    }
    if let Some(n) = r.count("memoryLimit", 0)? {
        c.memory_limit = n as usize;
    }
    if let Some(n) = r.count("maxResolutions", 1)? {
        c.max_resolutions = n as usize;
    }
    if let Some(skew) = r.seconds("clockSkewSeconds", true)? {
        c.clock_skew = skew.map(|s| (s * 1e6) as i64);
    }
    let secs = |name: &str| -> napi::Result<Option<i64>> {
        Ok(r.seconds(name, false)?.flatten().map(|s| (s * 1e6) as i64))
    };
    c.lifetime = crate::runtime::lifetime::Lifetime {
        idle: secs("sessionIdleSeconds")?,
        max: secs("sessionMaxSeconds")?,
        heartbeat: secs("heartbeatIntervalSeconds")?.map(|i| {
            let misses = map
                .get("heartbeatMissesAllowed")
                .and_then(Value::as_u64)
                .unwrap_or(2);
            (i, misses.min(u32::MAX as u64) as u32)
        }),
    };
    if let Some(key) = r.text("signingKey")? {
        let every = r.seconds("checkpointSeconds", false)?.unwrap_or(Some(10.0));
        c.recorder.checkpoints = Some(Arc::new(Checkpointing {
            signer: CheckpointSigner::from_pem_file(std::path::Path::new(key)).js()?,
            policy: CheckpointPolicy {
                every_events: r.count("checkpointEvents", 1)?.unwrap_or(1000),
                every: every.map(Duration::from_secs_f64),
                at_flush: true,
            },
        }));
    }
    Ok(c)
}
