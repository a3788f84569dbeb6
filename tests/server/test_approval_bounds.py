"""Security review, issue 13, finding 6 (last point): a pending approval never
becomes undecidable because another tenant filled the approvals table.

Approvals are bounded per session (1,000 undecided at once), not globally: a
session past its bound gets 429 `TOO_MANY_PENDING`, and no other session's
approval or resolution is dropped to make room. On a live `cra serve`, key B
floods resolves that each open an approval until it is refused; key A's
waiting refund is still listed, can be granted, and then runs.
"""

from __future__ import annotations

import httpx
from server_helpers import (
    assert_error,
    event_types,
    execute_body,
    new_session,
    resolve_body,
    resolved,
)

#: `approvals::MAX_PENDING_PER_SESSION` in the Rust core.
MAX_PENDING_PER_SESSION = 1_000


def test_a_flooding_session_cannot_evict_another_sessions_pending_approval(
    a: httpx.Client, b: httpx.Client, approver: httpx.Client
) -> None:
    # A's refund waits for a human.
    sid_a = new_session(a)
    res_a = resolved(a, sid_a)
    aid = res_a["decision"]["approval_id"]
    params = {"order_id": "o-77", "amount": 12}
    body = execute_body(sid_a, res_a["resolution_id"], "refund.issue", params)
    assert a.post("/v1/execute", json=body).status_code == 202

    # B resolves the same goal over and over: each opens an approval.
    sid_b = new_session(b)
    opened = 0
    first_b = None
    refused = None
    for _ in range(MAX_PENDING_PER_SESSION + 5):
        r = b.post("/v1/resolve", json=resolve_body(sid_b, "Refund and reply to ticket T-1"))
        if r.status_code != 200:
            refused = r
            break
        first_b = first_b or r.json()["decision"]["approval_id"]
        assert first_b, r.text
        opened += 1
    assert refused is not None, f"{opened} approvals opened, none refused"
    assert opened == MAX_PENDING_PER_SESSION
    err = assert_error(refused, 429, "TOO_MANY_PENDING")
    assert err["category"] == "rate_limited"
    assert err["details"]["path"] == "/requester/session_id", err
    assert str(MAX_PENDING_PER_SESSION) in err["message"], err
    # Refused again (nothing was kept), and recorded in B's own session.
    again = b.post("/v1/resolve", json=resolve_body(sid_b, "Refund and reply to ticket T-1"))
    assert_error(again, 429, "TOO_MANY_PENDING")
    assert "error.occurred" in event_types(b, sid_b)

    # The bound is B's session's: another session of B still resolves.
    other = new_session(b)
    assert resolved(b, other)["decision"]["approval_id"]

    # A's approval was not touched: listed, decidable, and A's execute runs.
    waiting = a.get("/v1/approvals", params={"session_id": sid_a}).json()["approvals"]
    assert [(w["approval_id"], w["parameters"]) for w in waiting] == [(aid, params)]
    assert aid in {p["approval_id"] for p in approver.get("/v1/approvals").json()["approvals"]}
    granted = approver.post(f"/v1/approvals/{aid}", json={"decision": "grant"})
    assert granted.status_code == 200 and granted.json()["granted"] is True, granted.text
    body = execute_body(sid_a, res_a["resolution_id"], "refund.issue", params)
    done = a.post("/v1/execute", json=body)
    assert done.status_code == 200, done.text
    assert done.json()["result"] == {"order_id": "o-77", "refunded": 12}
    assert a.get("/v1/approvals", params={"session_id": sid_a}).json()["approvals"] == []

    # A decision frees room in B's session: one rejected, one more opens.
    assert approver.post(f"/v1/approvals/{first_b}", json={"decision": "reject"}).status_code == 200
    assert resolved(b, sid_b)["decision"]["approval_id"]
    assert_error(b.post("/v1/resolve", json=resolve_body(sid_b)), 429, "TOO_MANY_PENDING")
