"""`cra serve --signing-key` (CRA_SIGNING_KEY_FILE): every chain gets signed
checkpoints, and `GET /v1/traces/{id}/checkpoint` serves the latest one to
the session's owner (and approvers, admins), so a witness can keep heads
outside the machine."""

from __future__ import annotations

from pathlib import Path

import cra
from cra import _core
from server_helpers import KEY_A, KEY_B, LIVE_KEYS, LiveServer, assert_error, resolve_body


def test_a_signing_server_serves_checkpoints_that_verify(tmp_path: Path) -> None:
    key = tmp_path / "server.key"
    key_id = _core.generate_signing_key(str(key))
    server = LiveServer(tmp_path / "srv", keys=LIVE_KEYS, CRA_SIGNING_KEY_FILE=str(key))
    try:
        with server.client(KEY_A) as a, server.client(KEY_B) as b:
            sid = a.post("/v1/sessions", json={"agent_id": "agent-1", "goal": "g"}).json()[
                "session_id"
            ]
            assert a.post("/v1/resolve", json=resolve_body(sid)).status_code == 200
            r = a.get(f"/v1/traces/{sid}/checkpoint")
            assert r.status_code == 200, r.text
            cp = r.json()
            assert cp["event_type"] == "trace.checkpoint" and cp["session_id"] == sid
            assert cp["payload"]["key_id"] == key_id
            assert_error(b.get(f"/v1/traces/{sid}/checkpoint"), 404, "SESSION_NOT_FOUND")
            assert a.delete(f"/v1/sessions/{sid}").status_code == 204
            final = a.get(f"/v1/traces/{sid}/checkpoint").json()
            assert final["payload"]["final"] is True
            v = a.get(f"/v1/traces/{sid}/verify").json()
            assert v["valid"] and v["signatures"]["closed"] and not v["signatures"]["faults"]
            ndjson = a.get(f"/v1/traces/{sid}", headers={"Accept": "application/x-ndjson"}).text
    finally:
        server.stop()
    path = tmp_path / "export.jsonl"
    path.write_text(ndjson)
    report = cra.verify_jsonl(path, public_key=f"{key}.pub")
    assert report.valid, report.signatures
    (s,) = report.signatures.values()  # type: ignore[union-attr]
    assert s["closed"] and s["coverage"] == 1.0


def test_without_a_signing_key_there_is_no_checkpoint(tmp_path: Path) -> None:
    server = LiveServer(tmp_path / "srv", keys=LIVE_KEYS)
    try:
        with server.client(KEY_A) as a:
            sid = a.post("/v1/sessions", json={"agent_id": "agent-1", "goal": "g"}).json()[
                "session_id"
            ]
            err = assert_error(a.get(f"/v1/traces/{sid}/checkpoint"), 404, "CHECKPOINT_NOT_FOUND")
            assert "--signing-key" in err["message"]
            assert a.get(f"/v1/traces/{sid}/verify").json()["signatures"] is None
    finally:
        server.stop()
