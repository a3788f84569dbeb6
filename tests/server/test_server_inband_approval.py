"""A governed call that waits for approval (`wait_for_approval`) is
released by a decision made on the approvals endpoint of a server running
on the same runtime."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from server_helpers import TestClient, make_app, new_session

GOAL = "Refund and reply to ticket T-1"


def test_a_waiting_call_runs_once_granted_over_http(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    with TestClient(app) as c:
        rt = app.state.cra.runtime
        sid = new_session(c)
        gt = rt.governed(sid, goal=GOAL, wait_for_approval=30)
        gt.register("refund.issue", lambda **p: {"refunded": p["amount"]})
        box: dict[str, Any] = {}
        t = threading.Thread(
            target=lambda: box.update(out=gt.call("refund.issue", order_id="o-1", amount=12))
        )
        t.start()
        deadline = time.monotonic() + 30
        pending: list[Any] = []
        while not pending and time.monotonic() < deadline:
            pending = c.get("/v1/approvals", params={"session_id": sid}).json()
            pending = pending.get("approvals", pending) if isinstance(pending, dict) else pending
            time.sleep(0.01)
        assert pending, "the call never waited"
        aid = pending[0]["approval_id"]
        r = c.post(f"/v1/approvals/{aid}", json={"decision": "grant", "approver": "alice"})
        assert r.status_code == 200, r.text
        t.join(30)
        assert box["out"] == {"refunded": 12}
