"""Security review, issue 13, finding 2: an agent cannot govern itself.

API keys have roles (`agent`, `approver`, `admin`). An agent key never
decides approvals and never changes atlases; the recorded approver is the
deciding key's name; an approver reads any session's trace. Keys come from
`CRA_API_KEYS="NAME:ROLE:KEY,..."` or from a JSON/TOML file of SHA-256
digests, and a bad entry stops `cra serve` with exit status 2 and one line.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

import httpx
import pytest
from server_helpers import (
    ADMIN_NAME,
    APPROVER_NAME,
    SUPPORT,
    LiveServer,
    assert_error,
    event_types,
    execute_body,
    inline_atlas,
    new_session,
    resolve_body,
    resolved,
)


def _refund_waiting(c: httpx.Client) -> tuple[str, dict[str, Any], str]:
    """A session of `c` whose refund waits for approval: (sid, resolution, approval id)."""
    sid = new_session(c)
    res = resolved(c, sid)
    body = execute_body(sid, res["resolution_id"], "refund.issue", {"order_id": "o-1", "amount": 5})
    assert c.post("/v1/execute", json=body).status_code == 202
    return sid, res, res["decision"]["approval_id"]


def _forbidden(r: httpx.Response, *needed: str) -> None:
    err = assert_error(r, 403, "ROLE_FORBIDDEN")
    assert err["category"] == "authorization"
    assert err["details"]["required_roles"] == list(needed), err


# -- approvals ---------------------------------------------------------------------
def test_an_agent_cannot_approve_its_own_refund(
    a: httpx.Client, approver: httpx.Client, admin: httpx.Client
) -> None:
    sid, res, aid = _refund_waiting(a)
    for body in (
        {"decision": "grant"},
        {"decision": "grant", "approver": "the-boss"},
        {"decision": "reject", "note": "no"},
    ):
        _forbidden(a.post(f"/v1/approvals/{aid}", json=body), "approver", "admin")
    # Refused alike for an approval id nobody minted: no oracle.
    _forbidden(a.post(f"/v1/approvals/{sid}", json={"decision": "grant"}), "approver", "admin")
    waiting = a.get("/v1/approvals", params={"session_id": sid}).json()["approvals"]
    assert [w["approval_id"] for w in waiting] == [aid]

    # The approver decides; the approver recorded is its key's name, not free text.
    err = assert_error(
        approver.post(f"/v1/approvals/{aid}", json={"decision": "grant", "approver": "x"}),
        400,
        "APPROVER_NOT_ALLOWED",
    )
    assert err["details"]["path"] == "/approver" and APPROVER_NAME in err["message"]
    r = approver.post(f"/v1/approvals/{aid}", json={"decision": "grant", "note": "checked"})
    assert r.status_code == 200, r.text
    assert r.json()["approver"] == APPROVER_NAME and r.json()["note"] == "checked"
    approved = a.get(f"/v1/traces/{sid}", params={"event_type": "action.approved"}).json()
    assert [(e["payload"]["approver"], e["payload"]["note"]) for e in approved] == [
        (APPROVER_NAME, "checked")
    ]
    body = execute_body(sid, res["resolution_id"], "refund.issue", {"order_id": "o-1", "amount": 5})
    assert a.post("/v1/execute", json=body).status_code == 200

    # An admin may decide too, under its own name.
    _, _, aid2 = _refund_waiting(a)
    r = admin.post(f"/v1/approvals/{aid2}", json={"decision": "reject"})
    assert r.status_code == 200 and r.json()["approver"] == ADMIN_NAME
    assert r.json()["granted"] is False


def test_an_approver_sees_every_session_but_acts_as_no_agent(
    a: httpx.Client, b: httpx.Client, approver: httpx.Client
) -> None:
    sid, _, aid = _refund_waiting(a)
    assert approver.get(f"/v1/traces/{sid}").json() == a.get(f"/v1/traces/{sid}").json()
    assert approver.get(f"/v1/traces/{sid}/verify").json()["valid"] is True
    assert approver.get(f"/v1/sessions/{sid}").json()["session_id"] == sid
    assert sid in {
        s["session_id"] for s in approver.get("/v1/sessions?limit=10000").json()["sessions"]
    }
    assert aid in {p["approval_id"] for p in approver.get("/v1/approvals").json()["approvals"]}
    listed = approver.get("/v1/approvals", params={"session_id": sid}).json()["approvals"]
    assert [p["approval_id"] for p in listed] == [aid]

    # Another agent still finds nothing (404, not 403: existence is not revealed).
    assert_error(b.get(f"/v1/traces/{sid}"), 404, "SESSION_NOT_FOUND")
    assert_error(b.get(f"/v1/sessions/{sid}"), 404, "SESSION_NOT_FOUND")
    assert_error(b.get("/v1/approvals", params={"session_id": sid}), 404, "SESSION_NOT_FOUND")

    # The approver cannot act as an agent.
    before = event_types(a, sid)
    _forbidden(approver.post("/v1/sessions", json={"agent_id": "x", "goal": "g"}), "agent", "admin")
    _forbidden(approver.post("/v1/resolve", json=resolve_body(sid)), "agent", "admin")
    _forbidden(approver.post("/v1/validate", json=resolve_body(sid)), "agent", "admin")
    exe = execute_body(sid, str(sid), "ticket.lookup", {"ticket_id": "T-1"})
    _forbidden(approver.post("/v1/execute", json=exe), "agent", "admin")
    _forbidden(approver.delete(f"/v1/sessions/{sid}"), "agent", "admin")
    assert event_types(a, sid) == before


# -- atlases -----------------------------------------------------------------------
def test_only_an_admin_changes_atlases(
    a: httpx.Client, approver: httpx.Client, admin: httpx.Client
) -> None:
    manifest = a.get(f"/v1/atlases/{SUPPORT}").json()
    allow_all = dict(manifest, policies=[{"policy_id": "all", "type": "allow", "actions": ["*"]}])
    mine = inline_atlas("org.test.roles", action_id="roles.read")
    for c in (a, approver):
        _forbidden(c.post("/v1/atlases", json=mine), "admin")
        _forbidden(c.put(f"/v1/atlases/{SUPPORT}", json=allow_all), "admin")
        _forbidden(c.delete(f"/v1/atlases/{SUPPORT}"), "admin")
        assert c.get("/v1/atlases").status_code == 200  # reading is for every role
    assert a.get(f"/v1/atlases/{SUPPORT}").json() == manifest

    assert admin.post("/v1/atlases", json=mine).status_code == 201
    assert (
        admin.put(
            "/v1/atlases/org.test.roles",
            json=inline_atlas("org.test.roles", "1.1.0", action_id="roles.read"),
        ).status_code
        == 200
    )
    assert admin.delete("/v1/atlases/org.test.roles").status_code == 204
    assert_error(a.get("/v1/atlases/org.test.roles"), 404, "ATLAS_NOT_FOUND")


# -- key files and key specs -------------------------------------------------------
AGENT_KEY, APPROVER_KEY, ADMIN_KEY = "file-agent-key-1", "file-approver-key-2", "file-admin-key-3"


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _key_file(tmp: Path, kind: str) -> Path:
    entries = [
        ("bot", "agent", AGENT_KEY),
        ("carol", "approver", APPROVER_KEY),
        ("root", "admin", ADMIN_KEY),
    ]
    path = tmp / f"keys.{kind}"
    if kind == "json":
        data = [{"name": n, "role": r, "sha256": _digest(k)} for n, r, k in entries]
        path.write_text(json.dumps({"keys": data}))
    else:
        path.write_text(
            "".join(
                f'[[keys]]\nname = "{n}"\nrole = "{r}"\nsha256 = "{_digest(k)}"\n\n'
                for n, r, k in entries
            )
        )
    return path


@pytest.mark.parametrize("kind", ["json", "toml"])
def test_keys_from_a_file_of_digests(tmp_path: Path, kind: str) -> None:
    path = _key_file(tmp_path, kind)
    assert AGENT_KEY not in path.read_text()
    server = LiveServer(tmp_path / "server", CRA_API_KEYS_FILE=str(path))
    try:
        with server.client(None) as anon:
            assert anon.get("/v1/health").json()["auth"] is True
            assert_error(anon.get("/v1/sessions"), 401, "API_KEY_REQUIRED")
        with server.client("not-a-key") as wrong:
            assert_error(wrong.get("/v1/sessions"), 401, "API_KEY_INVALID")
        with server.client(AGENT_KEY) as bot, server.client(APPROVER_KEY) as carol:
            _, _, aid = _refund_waiting(bot)
            _forbidden(
                bot.post(f"/v1/approvals/{aid}", json={"decision": "grant"}), "approver", "admin"
            )
            _forbidden(bot.delete(f"/v1/atlases/{SUPPORT}"), "admin")
            r = carol.post(f"/v1/approvals/{aid}", json={"decision": "grant"})
            assert r.status_code == 200 and r.json()["approver"] == "carol"
        with server.client(ADMIN_KEY) as root:
            assert root.delete(f"/v1/atlases/{SUPPORT}").status_code == 204
    finally:
        server.stop()


def _serve(tmp: Path, *flags: str, keys: Optional[str] = None, keys_file: str = "") -> Any:
    env = dict(
        os.environ, CRA_STORE=":memory:", CRA_API_KEYS=keys or "", CRA_API_KEYS_FILE=keys_file
    )
    return subprocess.run(
        [sys.executable, "-m", "cra", "serve", "--port", "0", *flags],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp,
    )


SECRET = "s3cret-key-value"

BAD_SPECS = [
    (f"ops:aprover:{SECRET}", ['unknown role "aprover"', 'did you mean "approver"', '"ops"']),
    (f":agent:{SECRET}", ["entry 1", "empty name"]),
    (f"x:agent:{SECRET}1,x:admin:{SECRET}2", ['"x"', "name", "entry 2"]),
    (f"x:agent:{SECRET},y:admin:{SECRET}", ["entry 2", '"y"', "same key", "entry 1"]),
    ("x:agent", ["entry 1", "NAME:ROLE:KEY"]),
    (f"ops:{SECRET}:agent", ['entry 1 ("ops")', "unknown role (roles:"]),  # fields swapped
    ("x:agent:", ["entry 1", "empty key"]),
]


@pytest.mark.parametrize(("spec", "words"), BAD_SPECS)
def test_a_bad_key_spec_stops_serve_with_one_line(
    tmp_path: Path, spec: str, words: list[str]
) -> None:
    for run in (_serve(tmp_path, keys=spec), _serve(tmp_path, "--api-keys", spec)):
        assert run.returncode == 2, run.stderr
        lines = run.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), run.stderr
        for w in words:
            assert w in lines[0], (w, lines[0])
        assert SECRET not in run.stderr
    assert "CRA_API_KEYS" in _serve(tmp_path, keys=spec).stderr
    assert "--api-keys" in _serve(tmp_path, "--api-keys", spec).stderr


BAD_FILES = [
    (
        "keys.json",
        json.dumps([{"name": "a", "role": "agent", "sha256": "ab" * 32, "key": SECRET}]),
        ['unknown field "key"'],
    ),
    ("keys.json", json.dumps({"keys": [{"name": "a", "role": "agent"}]}), ['"sha256"', "missing"]),
    (
        "keys.json",
        json.dumps({"keys": [{"name": "a", "role": "agent", "sha256": SECRET}]}),
        ["sha256", "64 hex"],
    ),
    (
        "keys.toml",
        f'[[keys]]\nname = "a"\nrole = "boss"\nsha256 = "{"ab" * 32}"\n',
        ['unknown role "boss"'],
    ),
    (
        "keys.toml",
        f'[[keys]]\nname = "a"\nrole = "agent"\nsha256 = "{"ab" * 32}"\n'
        f'[[keys]]\nname = "a"\nrole = "admin"\nsha256 = "{"cd" * 32}"\n',
        ['"a"', "keys[1]"],
    ),
    ("keys.toml", "keys = 5\n", ["keys"]),
    ("keys.toml", "[[keys]\n", ["TOML"]),
    ("keys.yaml", "[]", [".json or .toml"]),
    ("missing.json", None, ["missing.json"]),
]


@pytest.mark.parametrize(("name", "text", "words"), BAD_FILES)
def test_a_bad_key_file_stops_serve_with_one_line(
    tmp_path: Path, name: str, text: Optional[str], words: list[str]
) -> None:
    path = tmp_path / name
    if text is not None:
        path.write_text(text)
    for run in (
        _serve(tmp_path, keys_file=str(path)),
        _serve(tmp_path, "--api-keys-file", str(path)),
    ):
        assert run.returncode == 2, run.stderr
        lines = run.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), run.stderr
        for w in words:
            assert w in lines[0], (w, lines[0])
        assert SECRET not in run.stderr
