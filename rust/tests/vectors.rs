//! The shared vectors in `specs/vectors/`: canonical payloads, event hashes
//! under both algorithms, and chain verification faults.

use std::path::PathBuf;

use cra_core::json::canonical::to_canonical;
use cra_core::trace::hash::{to_hex, HashAlgorithm, HashInput};
use cra_core::trace::verify::{ChainVerifier, EventText};
use serde_json::Value;

fn load(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("specs/vectors")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).expect("vector file")).expect("json")
}

fn s<'a>(e: &'a Value, key: &str) -> &'a str {
    e[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} is a string"))
}

fn with_text<T>(e: &Value, f: impl FnOnce(&EventText<'_>) -> T) -> T {
    let payload = to_canonical(&e["payload"]).expect("canonical payload");
    let text = EventText {
        input: HashInput {
            trace_version: s(e, "trace_version"),
            event_id: s(e, "event_id"),
            trace_id: s(e, "trace_id"),
            span_id: s(e, "span_id"),
            parent_span_id: e["parent_span_id"].as_str(),
            session_id: s(e, "session_id"),
            sequence: e["sequence"].as_u64().expect("sequence"),
            timestamp: s(e, "timestamp"),
            event_type: s(e, "event_type"),
            canonical_payload: &payload,
            previous_event_hash: s(e, "previous_event_hash"),
        },
        event_hash: e.get("event_hash").and_then(Value::as_str).unwrap_or(""),
    };
    f(&text)
}

#[test]
fn hash_vectors_reproduce() {
    let vectors = load("hash-vectors.json");
    let cases = vectors["cases"].as_array().expect("cases");
    assert!(cases.len() >= 6);
    for case in cases {
        let name = s(case, "name");
        let event = &case["event"];
        assert_eq!(
            to_canonical(&event["payload"]).unwrap(),
            s(case, "canonical_payload"),
            "canonical payload of {name}"
        );
        for (alg, key) in [
            (HashAlgorithm::Sha256, "sha256"),
            (HashAlgorithm::Blake3, "blake3"),
        ] {
            let got = with_text(event, |t| to_hex(&t.input.hash(alg)));
            assert_eq!(got, s(case, key), "{key} of {name}");
        }
    }
}

#[test]
fn chain_vectors_report_first_fault() {
    let vectors = load("chains.json");
    for case in vectors["cases"].as_array().expect("cases") {
        let name = s(case, "name");
        let mut v = ChainVerifier::new();
        for e in case["events"].as_array().unwrap() {
            with_text(e, |t| v.push(t, None));
        }
        let r = v.finish();
        assert_eq!(r.valid(), case["valid"].as_bool().unwrap(), "{name}");
        assert_eq!(
            r.fault.as_ref().map(|f| f.kind.as_str()),
            case["error"].as_str(),
            "{name}"
        );
        assert_eq!(
            r.fault.as_ref().map(|f| f.index),
            case["index"].as_u64(),
            "{name}"
        );
        assert_eq!(
            r.event_count,
            case["events"].as_array().unwrap().len() as u64,
            "{name}"
        );
    }
}
