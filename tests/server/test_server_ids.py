"""Ids and owners of the HTTP server, in process: the server reads exactly the
UUID spellings the runtime reads and uses one canonical form; owner rows
are never replaced, and are written in one transaction with the session's
first event; a session that cannot be kept is ended, and the answer is a
typed 503, not a 500.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import cra
import pytest
from cra import _core
from cra.errors import ConflictError, SinkError, ValidationError
from cra.server.ids import canonical
from cra.server.owners import Owners
from cra.storage import SQLiteStore
from server_helpers import (
    KEY_A,
    TestClient,
    assert_error,
    event_types,
    make_app,
    new_session,
    resolve_body,
)

U = "9a91d072-5c51-44c3-b134-2ffd92723cf5"
SPELLINGS = [
    U,
    U.upper(),
    U.replace("-", ""),
    U.replace("-", "").upper(),
    "{" + U + "}",
    "{" + U.upper() + "}",
    "urn:uuid:" + U,
    "URN:UUID:" + U.upper(),
]
NOT_UUIDS = [
    "",
    "not-a-uuid",
    " " + U,
    U + "\n",
    "{" + U.replace("-", "") + "}",
    "urn:uuid:" + U.replace("-", ""),
    "uuid:" + U,
    "urn:" + U,
    "{" + U,
    "+" + U[1:],
    U.replace("-", "_"),
    U[:8] + "-" + U[9:].replace("-", "") + "---",
    "\uff10" * 32,  # full-width digits
    "g" * 32,
]


def _core_reads(text: str) -> bool:
    """Whether the runtime's own UUID parser takes `text`."""
    with cra.Runtime() as rt:
        try:
            rt.pending_approvals(text)
            return True
        except ValidationError:
            return False


@pytest.mark.parametrize("text", SPELLINGS + NOT_UUIDS)
def test_the_server_reads_the_spellings_the_runtime_reads(text: str) -> None:
    assert (canonical(text) is not None) == _core_reads(text), text
    if canonical(text) is not None:
        assert canonical(text) == U


def test_an_owner_is_never_replaced(tmp_path: Path) -> None:
    db = str(tmp_path / "cra.db")
    store = SQLiteStore(db)
    owners = Owners(db, store)
    rt = cra.Runtime(sinks=[store])
    owners.claim(U, "key-a")
    rt.create_session("agent", "goal", session_id=U)
    with pytest.raises(ConflictError):
        owners.claim(U, "key-b")
    assert rt.flush(timeout=10)
    # Even a writer told to store another owner keeps the first row.
    store.expect_owner(U, "key-b")
    rt.record(U, "x.more", {})
    assert rt.flush(timeout=10)
    rt.close()
    owners.close()
    again = Owners(db)  # a restart: nothing in memory, the row on disk
    with pytest.raises(ConflictError) as e:
        again.claim(U, "key-b")
    assert e.value.code == "SESSION_EXISTS"
    assert again.owner(U) == "key-a"
    again.close()
    store.close()
    memory = Owners(":memory:")
    memory.claim(U, "key-a")
    with pytest.raises(ConflictError):
        memory.claim(U, "key-b")
    assert memory.owner(U) == "key-a"


def test_a_session_and_its_owner_are_one_transaction(tmp_path: Path) -> None:
    """The owner row is written in the transaction of the session's first
    event: when that transaction cannot commit, the answer is 503 and the
    store holds neither; when it can again, it holds both."""
    app = make_app(tmp_path, api_keys=(KEY_A,))
    state = app.state.cra
    side = _core.SQLiteDatabase(str(tmp_path / "cra.db"))
    side.query("PRAGMA busy_timeout=30000")
    side.query(
        "CREATE TRIGGER no_owners BEFORE INSERT ON cra_server_owners "
        "BEGIN SELECT RAISE(ABORT, 'owners refused'); END"
    )
    with TestClient(app, raise_server_exceptions=False, headers={"X-API-Key": KEY_A}) as c:
        r = c.post("/v1/sessions", json={"agent_id": "a", "goal": "g"})
        err = assert_error(r, 503, "TRACE_UNAVAILABLE")
        assert err["recoverable"] is True and r.headers["Retry-After"] == "1"
        assert "owners refused" not in r.text  # the store's error is logged, not answered
        # The session was ended; the store has neither it nor an owner.
        ended = state.runtime.list_sessions("ended")
        assert [s["end_reason"] for s in ended] == ["not_acknowledged"]
        sid = ended[0]["session_id"]
        assert side.query("SELECT count(*) FROM cra_server_owners")[0][0] == 0
        assert state.store.events(sid) == []
        assert c.get("/v1/health").status_code == 503
        side.query("DROP TRIGGER no_owners")
        with pytest.raises(SinkError):  # the failure, reported once to flush()
            state.runtime.flush(timeout=10)
        assert state.runtime.flush(timeout=10)
        assert c.get("/v1/health").status_code == 200
        # Written together once the store takes them.
        rows = side.query("SELECT session_id FROM cra_server_owners")
        assert [r[0] for r in rows] == [sid]
        assert [e["event_type"] for e in state.store.events(sid)] == [
            "session.started",
            "session.ended",
        ]
        assert c.post("/v1/sessions", json={"agent_id": "a", "goal": "g"}).status_code == 201
    side.close()


def test_without_keys_a_chosen_id_is_kept_in_canonical_form(local: TestClient) -> None:
    wanted = str(uuid.uuid4())
    body: dict[str, Any] = {"agent_id": "a", "goal": "g", "session_id": "{" + wanted.upper() + "}"}
    r = local.post("/v1/sessions", json=body)
    assert r.status_code == 201 and r.json()["session_id"] == wanted
    for spelling in (wanted, wanted.upper(), wanted.replace("-", ""), "urn:uuid:" + wanted):
        body["session_id"] = spelling
        err = assert_error(local.post("/v1/sessions", json=body), 409, "SESSION_EXISTS")  # type: ignore[arg-type]
        assert err["details"]["path"] == "/session_id"
    bad = dict(body, session_id="nope")
    err = assert_error(local.post("/v1/sessions", json=bad), 400, "INVALID_REQUEST")  # type: ignore[arg-type]
    assert err["details"]["path"] == "/session_id"
    # Without keys the approver is still named in the body.
    assert_error(local.post(f"/v1/approvals/{U}", json={"decision": "grant"}), 400)  # type: ignore[arg-type]


def test_carp_ids_are_read_at_the_boundary(local: TestClient) -> None:
    sid = new_session(local)
    body = resolve_body(sid.upper())
    r = local.post("/v1/resolve", json=body)
    assert r.status_code == 200, r.text
    assert event_types(local, sid)[-1] == "carp.resolution.completed"
    bad = resolve_body("nope")
    bad["requester"]["parent_session_id"] = "nope either"
    err = assert_error(local.post("/v1/resolve", json=bad), 400, "INVALID_REQUEST")  # type: ignore[arg-type]
    assert err["request_id"] == bad["request_id"]
    assert [f["path"] for f in err["details"]["errors"]] == [
        "/requester/session_id",
        "/requester/parent_session_id",
    ]
    v = local.post("/v1/validate", json=bad).json()
    assert v["valid"] is False and v["errors"][0]["path"] == "/requester/session_id"
    assert "carp.request.received" in event_types(local, sid)
    # (A WebSocket given another spelling: test_server_takeover, with a receive timeout.)
    with local.websocket_connect("/v1/traces/stream?session_id=nope") as ws:
        assert ws.receive_json()["error"]["details"]["path"] == "/query/session_id"
