"""The LangChain adapter (cra.integrations.langchain): a session's allowed
actions as `StructuredTool`s; sync and async calls go through cra, and a
refused call is the tool's output (a `ToolException` handled by the tool)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from cra.agents import refusal_text
from cra.errors import ValidationError
from cra.integrations.langchain import structured_tools
from execute_helpers import Harness
from integration_helpers import (
    LOOKUP_SCHEMA,
    Recorder,
    executed,
    governed_with,
    harness,
)
from langchain_core.messages import ToolMessage
from langchain_core.tools import StructuredTool


@pytest.fixture
def h() -> Iterator[Harness]:
    with harness() as hh:
        yield hh


def tools_of(h: Harness, executors: dict[str, Recorder]) -> dict[str, StructuredTool]:
    return {t.name: t for t in structured_tools(governed_with(h, executors))}


def test_one_structured_tool_per_allowed_action(h: Harness) -> None:
    tools = structured_tools(h.rt.governed(h.sid))
    assert all(isinstance(t, StructuredTool) for t in tools)
    names = [t.name for t in tools]
    assert names == [
        "ticket__lookup",
        "ticket__note",
        "weather__get",
        "refund__issue",
        "ping__send",
    ]
    lookup = tools[0]
    assert lookup.description == "Fetch a ticket"
    assert lookup.args_schema == LOOKUP_SCHEMA
    assert lookup.args == LOOKUP_SCHEMA["properties"]
    assert lookup.handle_tool_error is True
    assert lookup.metadata == {"cra_action_id": "ticket.lookup", "risk_tier": "low"}
    assert "approval" in tools[3].description


def test_invoke_executes_through_cra(h: Harness) -> None:
    lookup = Recorder({"status": "open"})
    tool = tools_of(h, {"ticket.lookup": lookup})["ticket__lookup"]
    assert tool.invoke({"ticket_id": "T-1"}) == {"status": "open"}
    assert lookup.calls == [{"ticket_id": "T-1"}]
    assert [p["action_id"] for p in executed(h)] == ["ticket.lookup"]
    assert h.rt.verify(h.sid).valid


def test_ainvoke_executes_through_cra(h: Harness) -> None:
    note = Recorder("noted")
    tool = tools_of(h, {"ticket.note": note})["ticket__note"]
    assert asyncio.run(tool.ainvoke({"text": "hi", "tags": ["a"]})) == "noted"
    assert note.calls == [{"text": "hi", "tags": ["a"]}]
    assert len(executed(h)) == 1


def test_a_refused_call_is_the_tool_output(h: Harness) -> None:
    lookup = Recorder()
    tool = tools_of(h, {"ticket.lookup": lookup})["ticket__lookup"]
    out = tool.invoke({"ticket_id": "nope"})
    assert isinstance(out, str) and out.startswith("INVALID_PARAMETERS: ")
    assert "/ticket_id" in out
    assert lookup.calls == []
    assert executed(h) == []


def test_a_refused_async_call_is_the_tool_output(h: Harness) -> None:
    ping = Recorder("pong")
    tool = tools_of(h, {"ping.send": ping})["ping__send"]
    assert asyncio.run(tool.ainvoke({})) == "pong"
    out = asyncio.run(tool.ainvoke({}))
    assert out.startswith("RATE_LIMIT_EXCEEDED: ") and "retry after 60 s" in out
    assert len(ping.calls) == 1


def test_a_model_tool_call_gets_an_error_tool_message(h: Harness) -> None:
    tool = tools_of(h, {"ticket.lookup": Recorder()})["ticket__lookup"]
    msg = tool.invoke(
        {"type": "tool_call", "id": "call-1", "name": "ticket__lookup", "args": {"ticket_id": 5}}
    )
    assert isinstance(msg, ToolMessage)
    assert msg.status == "error" and msg.tool_call_id == "call-1"
    assert str(msg.content).startswith("INVALID_PARAMETERS: ")


def test_a_gated_call_waits_for_a_human_then_runs(h: Harness) -> None:
    refund = Recorder({"refunded": 20})
    tool = tools_of(h, {"refund.issue": refund})["refund__issue"]
    args = {"order_id": "o-1", "amount": 20}
    out = tool.invoke(args)
    assert out.startswith("APPROVAL_REQUIRED: ")
    (pending,) = h.rt.pending_approvals(h.sid)
    assert pending["approval_id"] in out
    h.rt.approve(pending["approval_id"], "alice")
    assert tool.invoke(args) == {"refunded": 20}
    assert refund.calls == [args]


def test_refusal_text_names_the_code_and_the_reason() -> None:
    err = ValidationError("bad", code="INVALID_PARAMETERS", details={"errors": []})
    assert refusal_text(err) == "INVALID_PARAMETERS: bad"
