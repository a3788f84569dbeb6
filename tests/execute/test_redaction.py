"""Redaction (issue 14): an executor's exception text goes through the
secret detector before it enters the trace or the answer; an atlas's
`redact`, `trace_parameters` and `trace_result` decide what the trace
records of parameters and results, secrets replaced by keyed markers.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import cra
import pytest
from execute_helpers import Harness, code, ops_atlas, payload_of, value_hash
from resolve_helpers import action, fault_paths, rejected

SECRET = "sk-live-123"
MARKER = re.compile(r"^\[REDACTED:[0-9a-f]{16}\]$")
KEY = b"0123456789abcdef0123456789abcdef"

CARD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "card_number": {"type": "string"},
        "amount": {"type": "number"},
        "note": {"type": "string"},
    },
}


def raise_secret(**_: Any) -> None:
    raise ValueError(f"api_key={SECRET} failed")


def charge(**params: Any) -> dict[str, Any]:
    return {"token": "tok-" + params["card_number"][-4:], "ok": True}


def card_atlas(**trace: Any) -> dict[str, Any]:
    """The operations atlas with `payment.charge`, traced as `trace` says."""
    charge_action = action("payment.charge", parameters_schema=CARD_SCHEMA, **trace)
    return ops_atlas(extra_actions=[charge_action])


def card_harness(**trace: Any) -> Harness:
    h = Harness(card_atlas(**trace), redaction_key=KEY)
    h.rt.register_executor("payment.charge", charge)
    h.resolve()
    return h


def test_an_executors_secret_never_enters_the_trace(h: Harness, tmp_path: Path) -> None:
    h.rt.register_executor("api.echo", raise_secret)
    r = h.execute("api.echo")
    assert (r.status, code(r)) == ("error", "EXECUTION_FAILED")
    assert r.error is not None
    assert SECRET not in r.error.message
    assert r.error.message == "api_key=[REDACTED] failed"
    # The answer names the exception's class.
    assert r.error.details == {"exception": "ValueError"}
    assert SECRET not in str(r.to_dict())
    failed = payload_of(h.events(), "action.failed")
    assert failed["error_message"] == "api_key=[REDACTED] failed"
    assert all(SECRET not in str(e.payload) for e in h.events())
    out = tmp_path / "trace.jsonl"
    h.rt.export_jsonl(out, h.sid)
    text = out.read_text(encoding="utf-8")
    assert "action.failed" in text and SECRET not in text
    assert h.rt.verify(h.sid).valid


def test_a_trace_file_never_holds_the_secret(tmp_path: Path) -> None:
    path = tmp_path / "live.jsonl"
    with Harness(trace_file=path) as h:
        h.resolve()
        h.rt.register_executor("api.echo", raise_secret)
        h.execute("api.echo")
        h.rt.flush()
        text = path.read_text(encoding="utf-8")
    assert "api_key=[REDACTED] failed" in text and SECRET not in text


@pytest.mark.parametrize(
    ("raised", "secret"),
    [
        (RuntimeError("auth failed: Authorization: Bearer abcdef0123456789"), "abcdef0123456789"),
        (RuntimeError('bad body {"password": "hunter2"}'), "hunter2"),
        (KeyError("AKIAIOSFODNN7EXAMPLE"), "AKIAIOSFODNN7EXAMPLE"),
        (
            RuntimeError("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADAN\n-----END PRIVATE KEY-----"),
            "MIIEvQIBADAN",
        ),
        (ValueError("jwt eyJhbGciOiJI.eyJzdWIiOiIx.c2lnbmF0dXJl rejected"), "eyJzdWIiOiIx"),
    ],
)
def test_each_kind_of_secret_is_redacted(h: Harness, raised: Exception, secret: str) -> None:
    def boom(**_: Any) -> None:
        raise raised

    h.rt.register_executor("api.echo", boom)
    r = h.execute("api.echo")
    assert r.error is not None and secret not in r.error.message
    assert "[REDACTED]" in r.error.message
    assert secret not in payload_of(h.events(), "action.failed")["error_message"]


def test_expose_errors_answers_with_the_text_and_still_redacts_the_trace() -> None:
    with Harness(expose_errors=True) as h:
        h.resolve()
        h.rt.register_executor("api.echo", raise_secret)
        r = h.execute("api.echo")
        assert r.error is not None and r.error.message == f"api_key={SECRET} failed"
        failed = payload_of(h.events(), "action.failed")
        assert failed["error_message"] == "api_key=[REDACTED] failed"
        assert all(SECRET not in str(e.payload) for e in h.events())


def test_redacted_parameters_are_recorded_with_keyed_markers() -> None:
    trace = {"redact": ["/card_number", "/token"], "trace_parameters": "redacted"}
    with card_harness(**trace) as h:
        params = {"card_number": "4111111111111111", "amount": 12, "note": "password=hunter2"}
        assert h.execute("payment.charge", params).status == "success"
        assert h.execute("payment.charge", params).status == "success"
        requested = [e.payload for e in h.events() if e.event_type == "action.requested"]
        first, second = requested
        recorded = first["parameters"]
        assert MARKER.match(recorded["card_number"]), recorded
        assert recorded["amount"] == 12
        # The detector also runs over the strings no pointer named.
        assert recorded["note"] == "password=[REDACTED]"
        # The same value, the same keyed marker.
        assert second["parameters"]["card_number"] == recorded["card_number"]
        # The hash stays the hash of what was given (approvals bind to it).
        assert first["parameters_hash"] == value_hash(params)
        executed = payload_of(h.events()[-4:], "action.executed")
        assert "result" not in executed and "result_hash" in executed
        assert all("4111111111111111" not in str(e.payload) for e in h.events())
        assert h.rt.verify(h.sid).valid


def test_a_stable_key_gives_the_same_markers_across_runtimes() -> None:
    trace = {"redact": ["/card_number"], "trace_parameters": "redacted"}
    markers = []
    for _ in range(2):
        with card_harness(**trace) as h:
            h.execute("payment.charge", {"card_number": "4111111111111111"})
            markers.append(payload_of(h.events(), "action.requested")["parameters"])
    assert markers[0] == markers[1]
    # Without a key: a random one per runtime.
    with Harness(card_atlas(**trace)) as h:
        h.rt.register_executor("payment.charge", charge)
        h.resolve()
        h.execute("payment.charge", {"card_number": "4111111111111111"})
        other = payload_of(h.events(), "action.requested")["parameters"]
    assert MARKER.match(other["card_number"]) and other != markers[0]


def test_full_records_as_given_and_the_result_is_redacted() -> None:
    trace = {"redact": ["/token"], "trace_parameters": "full", "trace_result": "redacted"}
    with card_harness(**trace) as h:
        params = {"card_number": "4111111111111111", "amount": 3}
        r = h.execute("payment.charge", params)
        assert r.result == {"token": "tok-1111", "ok": True}
        assert payload_of(h.events(), "action.requested")["parameters"] == params
        executed = payload_of(h.events(), "action.executed")
        assert MARKER.match(executed["result"]["token"])
        assert executed["result"]["ok"] is True
        assert executed["result_hash"] == value_hash(r.result)
        assert h.rt.verify(h.sid).valid


def test_the_default_records_hashes_only(h: Harness) -> None:
    h.execute("api.echo", {"card_number": "4111111111111111"})
    assert "parameters" not in payload_of(h.events(), "action.requested")
    assert "result" not in payload_of(h.events(), "action.executed")


@pytest.mark.parametrize(
    ("trace", "path", "hint"),
    [
        ({"trace_parameters": "redact"}, "/actions/8/trace_parameters", 'did you mean "redacted"'),
        ({"trace_result": "ful"}, "/actions/8/trace_result", 'did you mean "full"'),
        ({"trace_result": 1}, "/actions/8/trace_result", "must be a string"),
        (
            {"redact": ["card_number"], "trace_parameters": "redacted"},
            "/actions/8/redact/0",
            "not a JSON pointer",
        ),
        (
            {"redact": ["/ok", "/a~2"], "trace_result": "redacted"},
            "/actions/8/redact/1",
            "not a JSON pointer",
        ),
        ({"redact": ["/card_number"]}, "/actions/8/redact", 'recorded as "redacted"'),
        (
            {"redact": ["/card_number"], "trace_parameters": "full"},
            "/actions/8/redact",
            "set trace_parameters or trace_result",
        ),
        ({"redact": "/card_number"}, "/actions/8/redact", "must be an array"),
        ({"trace_params": "full"}, "/actions/8/trace_params", 'did you mean "trace_parameters"'),
        ({"redacts": ["/x"]}, "/actions/8/redacts", 'did you mean "redact"'),
    ],
)
def test_bad_trace_settings_are_atlas_invalid_with_their_path(
    rt: cra.Runtime, trace: dict[str, Any], path: str, hint: str
) -> None:
    err = rejected(rt, card_atlas(**trace))
    assert err.code == "ATLAS_INVALID"
    assert fault_paths(err) == [path], err.errors
    assert hint in err.errors[0]["message"], err.errors


def test_other_unknown_action_keys_are_refused_too(rt: cra.Runtime) -> None:
    """Issue 16: an action's keys are all read; an annotation is a fault."""
    with pytest.raises(cra.errors.ValidationError) as e:
        rt.load_atlas(card_atlas(owner_team="payments"))
    assert [f["path"] for f in e.value.errors] == ["/actions/8/owner_team"]


def test_a_short_redaction_key_is_refused() -> None:
    with pytest.raises(cra.errors.CraError) as e:
        cra.Runtime(redaction_key=b"short")
    assert e.value.code == "INVALID_OPTION"
