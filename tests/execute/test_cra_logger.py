"""The `cra` logger: refusals, failures and approval decisions are logged
at their levels; a successful execute logs nothing."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from cra import agents
from execute_helpers import Harness

REFUND = {"order_id": "o-1", "amount": 20}


def records(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "cra"]


def test_success_logs_nothing_even_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="cra")
    with Harness() as h:
        h.resolve()
        assert h.execute("api.echo", {"a": 1}).status == "success"
        assert h.rt.governed(h.sid).call("api.echo", a=1) == {"echo": {"a": 1}}
    assert records(caplog) == []


def test_denials_approvals_and_failures_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="cra")
    with Harness(executors=False) as h:
        gt = h.rt.governed(h.sid, on_approval=lambda p: agents.Grant("alice"))

        def boom(**p: Any) -> None:
            raise RuntimeError("disk on fire")

        gt.register("api.echo", boom)
        gt.register("payment.refund", lambda **p: "ok")
        with pytest.raises(agents.ActionDenied):
            gt.call("db.drop")
        with pytest.raises(agents.ActionFailed):
            gt.call("api.echo")
        assert gt.call("payment.refund", **REFUND) == "ok"
    logged = records(caplog)
    assert any(lvl == logging.INFO and "denied" in m and "db.drop" in m for lvl, m in logged)
    assert any(lvl == logging.WARNING and "disk on fire" in m for lvl, m in logged)
    assert any(lvl == logging.INFO and "pending_approval" in m for lvl, m in logged)
    assert any(lvl == logging.INFO and "granted by alice" in m for lvl, m in logged)


def test_nothing_is_formatted_when_the_level_is_off(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="cra")
    with Harness(executors=False) as h:
        h.resolve()
        assert h.execute("db.drop", {}).status == "denied"
    assert records(caplog) == []
