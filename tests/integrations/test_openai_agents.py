"""The OpenAI Agents SDK adapter (cra.integrations.openai_agents): a session's
allowed actions as `FunctionTool`s, run by a real `agents.Runner` against a
scripted model; calls go through cra, refusals reach the model as text."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from agents import Agent, FunctionTool, RunConfig, Runner
from agents.exceptions import UserError
from cra.agents import Grant
from cra.errors import CraError
from cra.integrations.openai_agents import (
    function_tools,
    refusal_message,
    strict_schema_ok,
)
from execute_helpers import Harness
from integration_helpers import (
    NOTE_SCHEMA,
    Recorder,
    call,
    executed,
    governed_with,
    harness,
    say,
    scripted_model,
    tool_outputs,
)

NO_TRACING = RunConfig(tracing_disabled=True)


@pytest.fixture
def h() -> Iterator[Harness]:
    with harness() as hh:
        yield hh


def run(agent: Agent[Any], prompt: str = "Help me") -> Any:
    return asyncio.run(Runner.run(agent, prompt, run_config=NO_TRACING))


def agent_with(tools: list[FunctionTool], model: Any) -> Agent[Any]:
    return Agent(name="support", instructions="Help the customer", tools=tools, model=model)


def by_name(tools: list[FunctionTool]) -> dict[str, FunctionTool]:
    return {t.name: t for t in tools}


# -- the tools mirror the resolution ----------------------------------------------------


def test_one_function_tool_per_allowed_action(h: Harness) -> None:
    gt = h.rt.governed(h.sid)
    tools = function_tools(gt)
    assert all(isinstance(t, FunctionTool) for t in tools)
    names = [t.name for t in tools]
    assert names == [
        "ticket__lookup",
        "ticket__note",
        "weather__get",
        "refund__issue",
        "ping__send",
    ]
    assert "ticket__delete" not in names
    lookup = by_name(tools)["ticket__lookup"]
    assert lookup.description == "Fetch a ticket"
    assert lookup.params_json_schema["properties"] == {
        "ticket_id": {"type": "string", "pattern": "^T-[0-9]+$"}
    }
    assert lookup.params_json_schema["required"] == ["ticket_id"]


def test_strict_mode_only_where_it_keeps_the_schema_meaning(h: Harness) -> None:
    tools = by_name(function_tools(h.rt.governed(h.sid)))
    assert tools["ticket__lookup"].strict_json_schema is True
    assert tools["ping__send"].strict_json_schema is True  # no parameters at all
    # An optional property (`tags`, `units`) would become required: not strict,
    # and the schema is offered as the atlas wrote it.
    assert tools["ticket__note"].strict_json_schema is False
    assert tools["ticket__note"].params_json_schema == NOTE_SCHEMA
    assert tools["weather__get"].strict_json_schema is False


def test_strict_schema_ok_rules() -> None:
    closed = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    assert strict_schema_ok(closed)
    assert not strict_schema_ok({"type": "object", "properties": {"a": {"type": "string"}}})
    assert not strict_schema_ok({"type": "object", "additionalProperties": True})
    nested = {
        "type": "object",
        "required": ["o"],
        "properties": {"o": {"type": "object", "properties": {"x": {"type": "integer"}}}},
    }
    assert not strict_schema_ok(nested)


def test_an_approval_gated_action_needs_approval(h: Harness) -> None:
    tools = by_name(function_tools(h.rt.governed(h.sid)))
    assert tools["refund__issue"].needs_approval is True
    assert "approval" in tools["refund__issue"].description
    assert all(t.needs_approval is False for n, t in tools.items() if n != "refund__issue")


# -- a run through the SDK ----------------------------------------------------------------


def test_a_run_executes_through_cra_and_reports_a_refusal_to_the_model(h: Harness) -> None:
    lookup = Recorder({"ticket_id": "T-1", "status": "open"})
    gt = governed_with(h, {"ticket.lookup": lookup})
    model = scripted_model(
        [call("ticket__lookup", {"ticket_id": "T-1"}, "c1")],
        [call("ticket__lookup", {"ticket_id": "not a ticket"}, "c2")],
        [say("Ticket T-1 is open.")],
    )
    result = run(agent_with(function_tools(gt), model))
    assert result.final_output == "Ticket T-1 is open."
    assert lookup.calls == [{"ticket_id": "T-1"}]
    # The model saw the result as JSON, then the refusal with its code and the faulty path.
    seen = tool_outputs(model.inputs[2])
    assert json.loads(seen["c1"]) == {"ticket_id": "T-1", "status": "open"}
    assert seen["c2"].startswith("INVALID_PARAMETERS: ")
    assert "/ticket_id" in seen["c2"]
    # The trace records the one execution and the refused call.
    assert [p["action_id"] for p in executed(h)] == ["ticket.lookup"]
    types = h.types()
    assert types.count("action.requested") == 2
    assert h.rt.verify(h.sid).valid


def test_a_rate_limited_call_tells_the_model_when_to_retry(h: Harness) -> None:
    ping = Recorder("pong")
    gt = governed_with(h, {"ping.send": ping})
    model = scripted_model(
        [call("ping__send", {}, "c1")],
        [call("ping__send", {}, "c2")],
        [say("done")],
    )
    run(agent_with(function_tools(gt), model))
    seen = tool_outputs(model.inputs[2])
    assert seen["c1"] == "pong"
    assert seen["c2"].startswith("RATE_LIMIT_EXCEEDED: ")
    assert "retry after 60 s" in seen["c2"]
    assert len(ping.calls) == 1


def test_a_non_strict_tool_accepts_its_optional_fields_left_out(h: Harness) -> None:
    note = Recorder()
    gt = governed_with(h, {"ticket.note": note})
    model = scripted_model(
        [call("ticket__note", {"text": "called back"}, "c1")],
        [call("ticket__note", {"text": "again", "tags": ["vip"]}, "c2")],
        [say("noted")],
    )
    run(agent_with(function_tools(gt), model))
    assert note.calls == [{"text": "called back"}, {"text": "again", "tags": ["vip"]}]


def test_arguments_that_are_not_json_are_reported_not_raised(h: Harness) -> None:
    note = Recorder()
    gt = governed_with(h, {"ticket.note": note})
    model = scripted_model([call("ticket__note", "{not json", "c1")], [say("sorry")])
    result = run(agent_with(function_tools(gt), model))
    assert result.final_output == "sorry"
    assert tool_outputs(model.inputs[1])["c1"].startswith("INVALID_PARAMETERS: ")
    assert note.calls == []


def test_the_sdk_asks_for_approval_then_cra_still_waits_for_its_human(h: Harness) -> None:
    refund = Recorder({"refunded": 20})
    gt = governed_with(h, {"refund.issue": refund})
    model = scripted_model(
        [call("refund__issue", {"order_id": "o-1", "amount": 20}, "c1")],
        [say("A human must approve the refund.")],
    )
    agent = agent_with(function_tools(gt), model)
    first = run(agent)
    assert [i.name for i in first.interruptions] == ["refund__issue"]
    state = first.to_state()
    state.approve(first.interruptions[0])
    result = asyncio.run(Runner.run(agent, state, run_config=NO_TRACING))
    assert result.final_output == "A human must approve the refund."
    out = tool_outputs(model.inputs[-1])["c1"]
    assert out.startswith("APPROVAL_REQUIRED: ")
    pending = h.rt.pending_approvals(h.sid)
    assert len(pending) == 1 and pending[0]["approval_id"] in out
    assert refund.calls == []


def test_without_a_failure_function_a_refusal_ends_the_run(h: Harness) -> None:
    gt = governed_with(h, {"ticket.lookup": Recorder()})
    model = scripted_model([call("ticket__lookup", {"ticket_id": 7}, "c1")], [say("never")])
    tools = function_tools(gt, failure_error_function=None)
    with pytest.raises(UserError) as info:  # how the SDK ends a run on a tool's error
        run(agent_with(tools, model))
    cause = info.value.__cause__
    assert isinstance(cause, CraError) and cause.code == "INVALID_PARAMETERS"


def test_refusal_message_hides_errors_that_are_not_cras() -> None:
    text = refusal_message(None, RuntimeError("secret detail"))  # type: ignore[arg-type]
    assert "secret" not in text


def test_the_sessions_approval_hook_decides_a_gated_call(h: Harness) -> None:
    refund = Recorder({"refunded": 20})
    gt = h.rt.governed(h.sid, on_approval=lambda pending: Grant("alice"))
    gt.register("refund.issue", refund)
    tools = [t for t in function_tools(gt, sdk_approval=False) if t.name == "refund__issue"]
    assert tools[0].needs_approval is False  # cra's hook is the only approver here
    model = scripted_model(
        [call("refund__issue", {"order_id": "o-1", "amount": 20}, "c1")], [say("Refunded.")]
    )
    assert run(agent_with(tools, model)).final_output == "Refunded."
    assert json.loads(tool_outputs(model.inputs[1])["c1"]) == {"refunded": 20}
    assert refund.calls == [{"order_id": "o-1", "amount": 20}]
