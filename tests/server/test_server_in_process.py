"""The HTTP server app in process: the fast resolve path answers like the
route, vendor media types, unexpected failures in the error shape, no keys,
durable traces after shutdown, configuration from env and flags, and the
atlas directory's dependency order.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import cra
import pytest
from cra.cli import build_parser
from cra.server import ServerConfig
from cra.server.state import load_atlas_dir
from cra.storage import SQLiteStore
from server_helpers import (
    EXAMPLE_ATLAS,
    SUPPORT,
    ZERO_UUID,
    TestClient,
    assert_error,
    event_types,
    execute_body,
    inline_atlas,
    make_app,
    new_session,
    resolve_body,
    resolved,
)


def _resolve_script(c: TestClient) -> list[Any]:
    """Statuses, content types and bodies (ids masked) of a fixed set of resolves."""
    sid = new_session(c)
    rid = str(uuid.UUID(int=7, version=4))
    out = []
    cases = [
        (resolve_body(sid, request_id=rid), {}),
        (resolve_body(sid, request_id=rid), {}),
        (resolve_body(sid), {"Accept": "application/vnd.cra.carp+json"}),
        ({"carp_version": "9"}, {}),
        (resolve_body(ZERO_UUID, request_id=str(uuid.UUID(int=8, version=4))), {}),
        ({"carp_version": "9"}, {"X-Request-ID": "r-1"}),
        (resolve_body(sid, atlas_ids=["x.y"]), {}),
    ]
    for body, headers in cases:
        r = c.post("/v1/resolve", json=body, headers=headers)
        data = r.json()
        if r.status_code == 200:
            data = sorted(data)
        else:
            data["error"]["message"] = data["error"]["message"].replace(sid, "S")
            data["error"]["request_id"] = data["error"]["request_id"] is not None
        out.append((r.status_code, r.headers["content-type"], data))
    for raw, ctype in (
        (b"{", "application/json"),
        (b"{}", "text/plain"),
        (b"{}", None),
        (b"x" * 2_000_000, "application/json"),
    ):
        r = c.post("/v1/resolve", content=raw, headers={"Content-Type": ctype} if ctype else {})
        out.append((r.status_code, r.headers["content-type"], r.json()))
    return out


def test_fast_path_answers_like_the_route(tmp_path: Path) -> None:
    answers = []
    for fast in (True, False):
        app = make_app(tmp_path / str(fast), fast_resolve=fast)
        with TestClient(app, raise_server_exceptions=False) as c:
            answers.append(_resolve_script(c))
    assert answers[0] == answers[1]
    assert [a[0] for a in answers[0]] == [200, 409, 200, 400, 404, 400, 404, 400, 415, 415, 413]


def _execute_script(c: TestClient) -> list[Any]:
    """Statuses, content types, headers and the shape of a fixed set of
    executes: success, approval pending, denied, bad parameters, no
    executor, executor failure, unknown resolution, bad bodies."""
    sid = new_session(c)
    res = resolved(c, sid)["resolution_id"]
    cases = [
        execute_body(sid, res, "ticket.lookup", {"ticket_id": "T-1"}),
        execute_body(sid, res, "refund.issue", {"order_id": "O-1", "amount": 5}),
        execute_body(sid, res, "ticket.delete", {"ticket_id": "T-1"}),
        execute_body(sid, res, "ticket.lookup", {"ticket_id": "nope"}),
        execute_body(sid, res, "ticket.update", {"ticket_id": "T-1", "status": "solved"}),
        execute_body(sid, res, "customer.lookup", {"email": "a@b.c"}),
        execute_body(sid, ZERO_UUID, "ticket.lookup", {"ticket_id": "T-1"}),
        {"carp_version": "9"},
    ]
    out: list[Any] = []
    for body in cases:
        r = c.post("/v1/execute", json=body, headers={"Accept": "application/vnd.cra.carp+json"})
        data = r.json()
        shape = (
            (data.get("status"), (data.get("error") or {}).get("code"))
            if "error" not in data or data.get("status")
            else (None, data["error"]["code"])
        )
        out.append((r.status_code, r.headers["content-type"], shape, r.headers.get("retry-after")))
    for raw, ctype in ((b"{", "application/json"), (b"{}", "text/plain")):
        r = c.post("/v1/execute", content=raw, headers={"Content-Type": ctype})
        out.append((r.status_code, r.headers["content-type"], r.json()["error"]["code"], None))
    return out


def test_fast_execute_answers_like_the_route(tmp_path: Path) -> None:
    answers = []
    for fast in (True, False):
        app = make_app(tmp_path / str(fast), fast_resolve=fast)
        with TestClient(app, raise_server_exceptions=False) as c:
            answers.append(_execute_script(c))
    assert answers[0] == answers[1]
    assert [a[0] for a in answers[0]] == [200, 202, 403, 422, 502, 502, 404, 400, 400, 415]


def test_vendor_media_types_are_accepted(local: TestClient) -> None:
    sid = new_session(local)
    for ctype in ("application/vnd.cra.carp+json", "application/json; charset=utf-8", None):
        headers = {"Content-Type": ctype} if ctype else {}
        body = json.dumps(resolve_body(sid)).encode()
        # Undeclared is refused: a browser's cross-site "simple" request has no JSON type.
        expected = 200 if ctype else 415
        assert local.post("/v1/resolve", content=body, headers=headers).status_code == expected


def test_unexpected_failure_is_500_in_error_shape(local: TestClient) -> None:
    state = local.app.state.cra  # type: ignore[attr-defined]

    def broken() -> None:
        raise RuntimeError("disk on fire")

    state.runtime.atlases = broken
    err = assert_error(local.get("/v1/atlases"), 500, "INTERNAL_ERROR")  # type: ignore[arg-type]
    assert err["category"] == "internal" and err["details"] == {}
    assert "disk on fire" not in err["message"] and "RuntimeError" not in str(err)
    assert err["request_id"]  # the log line of the failure names it


def test_without_keys_everything_is_visible(local: TestClient) -> None:
    sid = new_session(local)
    assert local.get(f"/v1/traces/{sid}").status_code == 200
    assert local.get("/v1/health").json()["auth"] is False


def test_traces_are_durable_after_shutdown(tmp_path: Path) -> None:
    with TestClient(make_app(tmp_path)) as c:
        sid = new_session(c)
        resolved(c, sid)
        n = len(event_types(c, sid))
    store = SQLiteStore(tmp_path / "cra.db")
    assert store.verify(sid).valid and store.verify(sid).event_count == n
    store.close()


def test_config_from_env_and_flags() -> None:
    env = {
        "CRA_PORT": "9001",
        "CRA_API_KEYS": " a , b ,",
        "CRA_CLOCK_SKEW": "off",
        "CRA_MAX_BODY_BYTES": "10",
        "CRA_ACCESS_LOG": "yes",
    }
    cfg = ServerConfig.from_env(env)
    assert (cfg.port, cfg.api_keys, cfg.clock_skew_seconds) == (9001, ("a", "b"), None)
    assert cfg.max_body_bytes == 10 and cfg.access_log is True and cfg.host == "127.0.0.1"
    assert "api_keys=" not in repr(cfg)  # keys stay out of reprs
    args = build_parser().parse_args(["serve", "--port", "7000", "--store", ":memory:"])
    merged = cfg.with_args(args)
    assert (merged.port, merged.store, merged.api_keys) == (7000, ":memory:", ("a", "b"))
    with pytest.raises(ValueError, match="CRA_PORT"):
        ServerConfig.from_env({"CRA_PORT": "http"})
    with pytest.raises(ValueError):
        ServerConfig(port=70000).validated()
    assert ServerConfig.from_env({}).port == 8420


def test_serve_refuses_a_bad_setting() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "cra", "serve", "--port", "-5"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "port" in r.stderr


def test_atlas_dir_loads_dependencies_in_order(tmp_path: Path) -> None:
    base = inline_atlas("org.test.base")
    top = inline_atlas("org.test.top", dependencies={"org.test.base": "^1.0.0"})
    top["actions"] = [{"action_id": "top.read", "name": "Read", "description": "Reads"}]
    top["capabilities"] = []
    top["policies"] = []
    (tmp_path / "1-top.json").write_text(json.dumps(top))
    (tmp_path / "2-base.json").write_text(json.dumps(base))
    shutil.copytree(EXAMPLE_ATLAS, tmp_path / "support")
    (tmp_path / "notes.txt").write_text("ignored")
    with cra.Runtime() as rt:
        loaded = load_atlas_dir(rt, str(tmp_path))
    assert sorted(loaded) == sorted(["org.test.base", "org.test.top", SUPPORT])
