use serde_json::{json, Value};

use super::{recorded, redact_pointers, redact_secrets, RedactionKey, REDACTED};
use crate::atlas::model::{TraceMode, TraceSpec};
use crate::atlas::parts::pointer_tokens;

fn r(text: &str) -> String {
    redact_secrets(text).into_owned()
}

/// The secret is gone and the text around it stays.
fn gone(text: &str, secret: &str) -> String {
    let out = r(text);
    assert!(!out.contains(secret), "{secret:?} left in {out:?}");
    assert!(out.contains(REDACTED), "{out:?}");
    out
}

#[test]
fn api_keys_of_each_kind_are_redacted() {
    assert_eq!(
        gone("call failed: sk-live-123 rejected", "sk-live-123"),
        "call failed: [REDACTED] rejected"
    );
    gone("key sk-proj-AbCdEf0123456789xyz", "AbCdEf0123456789");
    gone("key sk-ant-api03-abcdefghijkl was revoked", "abcdefghijkl");
    gone("stripe sk_live_51HxYzAbCdEf failed", "sk_live_51HxYzAbCdEf");
    gone("stripe rk_test_abcdef123 failed", "rk_test_abcdef123");
    gone(
        "token ghp_0123456789abcdefghijABCDEFGHIJ012345 expired",
        "ghp_0123456789abcdefghij",
    );
    gone(
        "pat github_pat_11ABCDEFG0123456789_abcdefghij",
        "github_pat_11ABCDEFG0123456789",
    );
    gone(
        "slack xoxb-1234567890-abcdefghij said no",
        "xoxb-1234567890",
    );
    gone("slack xoxp-1234-5678-abcd said no", "xoxp-1234-5678");
    gone(
        "google AIzaSyA1234567890abcdefghijklmnopqrstu failed",
        "AIzaSyA1234567890abcdefghijklmnopqrstu",
    );
}

#[test]
fn bearer_tokens_keep_their_scheme() {
    assert_eq!(
        r("sent Bearer abc.def-ghi_jkl~123 and failed"),
        "sent Bearer [REDACTED] and failed"
    );
    let out = gone("Authorization: Bearer abcdefgh12345678", "abcdefgh12345678");
    assert!(out.starts_with("Authorization: "), "{out}");
    gone("authorization=Basic dXNlcjpwYXNz", "dXNlcjpwYXNz");
}

#[test]
fn key_value_pairs_lose_their_value_and_keep_their_key() {
    assert_eq!(r("api_key=sk-live-123 failed"), "api_key=[REDACTED] failed");
    assert_eq!(r("password=hunter2"), "password=[REDACTED]");
    assert_eq!(
        r("login with passwd: hunter2"),
        "login with passwd: [REDACTED]"
    );
    assert_eq!(r("DB_PASSWORD = 'hunter2'"), "DB_PASSWORD = '[REDACTED]'");
    assert_eq!(r("client_secret=abc&x=1"), "client_secret=[REDACTED]&x=1");
    assert_eq!(r("token=abc123, retry"), "token=[REDACTED], retry");
    assert_eq!(
        r(r#"bad body {"password": "hu\"nter2", "user": "bob"}"#),
        r#"bad body {"password": "[REDACTED]", "user": "bob"}"#
    );
    assert_eq!(
        r("{'api_key': 'abc', 'n': 1}"),
        "{'api_key': '[REDACTED]', 'n': 1}"
    );
    assert_eq!(
        r(r#"payload "{\"secret\": \"s3cr3t\"}""#),
        r#"payload "{\"secret\": \"[REDACTED]\"}""#
    );
}

#[test]
fn aws_keys_are_redacted() {
    gone("id AKIAIOSFODNN7EXAMPLE denied", "AKIAIOSFODNN7EXAMPLE");
    gone("id ASIAIOSFODNN7EXAMPLE denied", "ASIAIOSFODNN7EXAMPLE");
    let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    gone(&format!("aws_secret_access_key {secret}"), secret);
    gone(&format!("AWS_SECRET_ACCESS_KEY={secret}"), secret);
}

#[test]
fn private_key_blocks_are_redacted_whole() {
    let text = "bad key:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nIBAAKC\n-----END RSA PRIVATE KEY-----\nafter";
    assert_eq!(r(text), "bad key:\n[REDACTED]\nafter");
    // Cut off before its end line: everything after BEGIN goes.
    let torn = "x -----BEGIN PRIVATE KEY-----\nMIIEvQ";
    assert_eq!(r(torn), "x [REDACTED]");
    gone(
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk\n-----END OPENSSH PRIVATE KEY-----",
        "b3BlbnNzaC1rZXk",
    );
}

#[test]
fn jwts_are_redacted() {
    let jwt =
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
    assert_eq!(
        r(&format!("token {jwt} expired")),
        "token [REDACTED] expired"
    );
    gone(&format!("jwt={jwt}"), "eyJzdWIiOiIxMjM0In0");
}

#[test]
fn innocent_text_is_untouched() {
    for text in [
        "",
        "division by zero",
        "connection refused by 10.0.0.1:5432",
        "KeyError: 'card_number'",
        "the API is down",
        "user bob not found (id=42)",
        "skip sk-learn; desk-top and task-1 are fine",
        "bearer of bad news",
        "Token expired at 12:00",
        "max_tokens exceeded",
        "the author field is missing",
        "AKIA is a prefix, AKIA123 is short",
        "eyJ alone is not a token",
        "-----BEGIN CERTIFICATE-----",
    ] {
        assert!(
            matches!(redact_secrets(text), std::borrow::Cow::Borrowed(_)),
            "{text:?} became {:?}",
            r(text)
        );
    }
}

#[test]
fn hmac_matches_rfc_4231() {
    // Test case 2 of RFC 4231 (a key shorter than 16 bytes is allowed
    // internally; the option asks for 16).
    let key = RedactionKey::padded(b"Jefe");
    assert_eq!(
        hex::encode(key.hmac(b"what do ya want for nothing?")),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
    // Test case 6: a key longer than the block is hashed first.
    let key = RedactionKey::padded(&[0xaa; 131]);
    assert_eq!(
        hex::encode(key.hmac(b"Test Using Larger Than Block-Size Key - Hash Key First")),
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
    );
    assert!(RedactionKey::new(b"short").is_err());
    assert!(RedactionKey::new(&[7; 16]).is_ok());
}

fn pointers(list: &[&str]) -> Vec<Vec<String>> {
    list.iter().map(|p| pointer_tokens(p).unwrap()).collect()
}

#[test]
fn pointers_replace_what_they_find_by_a_keyed_marker() {
    let key = RedactionKey::new(&[1; 32]).unwrap();
    let mut v = json!({
        "card_number": "4111111111111111",
        "other": "4111111111111111",
        "a/b": {"~k": 7},
        "cards": [{"cvv": "123"}, {"cvv": "456"}],
        "list": ["x", "y"],
        "keep": "visible",
    });
    redact_pointers(
        &mut v,
        &pointers(&[
            "/card_number",
            "/other",
            "/a~1b/~0k",
            "/cards/*/cvv",
            "/list/1",
            "/missing/deep",
            "/keep/0",
        ]),
        &key,
    );
    let card = v["card_number"].as_str().unwrap();
    assert!(card.starts_with("[REDACTED:") && card.len() == "[REDACTED:]".len() + 16);
    // The same value, the same marker; another value, another marker.
    assert_eq!(v["other"], v["card_number"]);
    assert_ne!(v["cards"][0]["cvv"], v["cards"][1]["cvv"]);
    assert!(v["a/b"]["~k"].as_str().unwrap().starts_with("[REDACTED:"));
    assert_eq!(v["list"][0], "x");
    assert!(v["list"][1].as_str().unwrap().starts_with("[REDACTED:"));
    assert_eq!(v["keep"], "visible");
    assert!(v.get("missing").is_none());
    // Another key, another marker for the same value.
    let other = RedactionKey::new(&[2; 32]).unwrap();
    assert_ne!(other.marker(&json!("4111111111111111")), card);
    assert_eq!(key.marker(&json!("4111111111111111")), card);
    // A number and the string of its digits are different values.
    assert_ne!(key.marker(&json!(123)), key.marker(&json!("123")));
}

#[test]
fn the_empty_pointer_redacts_the_whole_value_and_leading_zeros_are_not_indexes() {
    let key = RedactionKey::new(&[1; 32]).unwrap();
    let mut v = json!({"x": 1});
    redact_pointers(&mut v, &pointers(&[""]), &key);
    assert!(v.as_str().unwrap().starts_with("[REDACTED:"));
    let mut v = json!(["a", "b"]);
    redact_pointers(&mut v, &pointers(&["/01"]), &key);
    assert_eq!(v, json!(["a", "b"]));
}

#[test]
fn recorded_follows_the_mode() {
    let key = RedactionKey::new(&[1; 32]).unwrap();
    let spec = TraceSpec {
        redact: pointers(&["/card"]),
        parameters: TraceMode::Redacted,
        result: TraceMode::Hash,
    };
    let v = json!({"card": "4111", "note": "api_key=abc", "n": 1});
    assert_eq!(recorded(&v, TraceMode::Hash, &spec, &key), None);
    assert_eq!(
        recorded(&v, TraceMode::Full, &spec, &key).unwrap(),
        r#"{"card":"4111","n":1,"note":"api_key=abc"}"#
    );
    let red: Value =
        serde_json::from_str(&recorded(&v, TraceMode::Redacted, &spec, &key).unwrap()).unwrap();
    assert!(red["card"].as_str().unwrap().starts_with("[REDACTED:"));
    assert_eq!(red["note"], "api_key=[REDACTED]");
    assert_eq!(red["n"], 1);
}

#[test]
fn pointer_syntax() {
    assert_eq!(pointer_tokens("").unwrap(), Vec::<String>::new());
    assert_eq!(pointer_tokens("/").unwrap(), vec![String::new()]);
    assert_eq!(pointer_tokens("/a~1b/~0c").unwrap(), vec!["a/b", "~c"]);
    assert!(pointer_tokens("card").is_err());
    assert!(pointer_tokens("/a~2").is_err());
    assert!(pointer_tokens("/a~").is_err());
}
