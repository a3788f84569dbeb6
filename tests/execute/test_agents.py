"""Agent integration (cra.agents): governed tools that resolve when needed,
execute through the runtime and raise typed exceptions the agent can show
the model; and tool definitions for OpenAI chat completions, Anthropic
Messages and MCP `tools/list`, checked against each stack's documented
shape."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import cra
import pytest
from cra import agents
from cra.agents import ActionDenied, ActionFailed, ApprovalPending, RateLimited
from cra.errors import (
    ApprovalRequiredError,
    AuthorizationError,
    RateLimitedError,
    UpstreamError,
)
from execute_helpers import Harness, ops_atlas, value_hash
from resolve_helpers import action, make_atlas, policy

#: OpenAI function names and Anthropic tool names.
NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
#: MCP tool names (SEP-986): 1-128 of letters, digits, `_`, `-`, `.`.
MCP_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
MCP_ANNOTATIONS = {"title", "readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint"}


@pytest.fixture
def h() -> Iterator[Harness]:
    with Harness(executors=False) as harness:
        yield harness


@pytest.fixture
def tools(h: Harness) -> agents.GovernedTools:
    return h.rt.governed(h.sid)


# -- governed tools ---------------------------------------------------------------------


def test_a_tool_resolves_on_first_use_and_executes_through_the_runtime(
    h: Harness, tools: agents.GovernedTools
) -> None:
    @tools.tool("api.call")
    def call_api(path: str, retries: int = 0) -> dict[str, Any]:
        """Call the API."""
        return {"called": path, "retries": retries}

    assert h.types() == ["session.started"]
    assert call_api(path="/a") == {"called": "/a", "retries": 0}
    types = h.types()
    assert types.count("carp.resolution.completed") == 1
    assert types[-4:] == [
        "carp.request.received",
        "action.requested",
        "action.approved",
        "action.executed",
    ]
    assert call_api(path="/b", retries=1) == {"called": "/b", "retries": 1}
    assert h.types().count("carp.resolution.completed") == 1
    assert h.types().count("action.executed") == 2
    assert h.rt.verify(h.sid).valid


def test_a_tool_keeps_the_function_metadata(tools: agents.GovernedTools) -> None:
    def lookup(order_id: str) -> str:
        """Look an order up."""
        return order_id

    governed = tools.tool("api.echo")(lookup)
    assert governed.__name__ == "lookup"
    assert governed.__doc__ == "Look an order up."
    assert governed.__wrapped__ is lookup  # type: ignore[attr-defined]
    assert governed is not lookup


def test_wrap_without_decorator_syntax(tools: agents.GovernedTools) -> None:
    echo = tools.wrap(lambda **p: p, "api.echo")
    assert echo(x=1) == {"x": 1}


def test_a_tool_is_the_executor_for_plain_execute_too(
    h: Harness, tools: agents.GovernedTools
) -> None:
    @tools.tool("api.echo")
    def echo(**p: Any) -> Any:
        return ["echo", p]

    h.resolve()
    assert h.execute("api.echo", {"a": 1}).result == ["echo", {"a": 1}]


def test_a_tool_resolves_again_after_the_resolution_expires(
    h: Harness, tools: agents.GovernedTools
) -> None:
    echo = tools.tool("api.echo")(lambda **p: "ok")
    assert echo() == "ok"
    first = tools.resolution.resolution_id
    h.clock.advance(3599)
    assert echo() == "ok"
    assert tools.resolution.resolution_id == first
    h.clock.advance(1)
    assert echo() == "ok"
    assert tools.resolution.resolution_id != first
    assert h.types().count("carp.resolution.completed") == 2


def test_a_tool_uses_the_session_goal_and_agent(h: Harness, tools: agents.GovernedTools) -> None:
    tools.tool("api.echo")(lambda: 1)()
    received = [e.payload for e in h.events() if e.event_type == "carp.request.received"]
    assert {r["goal"] for r in received} == {h.goal}
    assert tools.agent_id == h.agent_id
    assert tools.session_id == h.sid


def test_governed_options() -> None:
    with Harness(
        ops_atlas(), make_atlas("org.test.other", actions=[action("x.y")]), executors=False
    ) as h:
        tools = h.rt.governed(h.sid, goal="Refund", risk_tier="high", atlas_ids=["org.test.ops"])
        res = tools.resolve()
        assert "x.y" not in res.allowed_action_ids + res.denied_action_ids
        received = [e.payload for e in h.events() if e.event_type == "carp.request.received"]
        assert received[-1]["goal"] == "Refund"
        assert received[-1]["risk_tier"] == "high"
        assert received[-1]["atlas_ids"] == ["org.test.ops"]


def test_governed_needs_a_known_session(h: Harness) -> None:
    with pytest.raises(cra.errors.NotFoundError):
        h.rt.governed("0193a0b0-0000-7000-8000-0000000004ff")


# -- refused calls raise typed exceptions -----------------------------------------------


def test_a_denied_call_raises_action_denied(tools: agents.GovernedTools) -> None:
    ran: list[int] = []
    drop = tools.tool("db.drop")(lambda: ran.append(1))
    with pytest.raises(ActionDenied) as info:
        drop()
    err = info.value
    assert isinstance(err, AuthorizationError)
    assert (err.code, err.category, err.http_status) == (
        "ACTION_NOT_ALLOWED",
        "authorization",
        403,
    )
    assert str(err) == "Databases are never dropped"
    assert err.response.status == "denied"
    assert ran == []


def test_an_unknown_tool_is_denied(tools: agents.GovernedTools) -> None:
    with pytest.raises(ActionDenied) as info:
        tools.call("no.such")
    assert "no.such" in str(info.value)


def test_a_rate_limited_call_raises_rate_limited(h: Harness, tools: agents.GovernedTools) -> None:
    call_api = tools.tool("api.call")(lambda **p: "ok")
    call_api(path="/a")
    h.clock.advance(15)
    call_api(path="/b")
    with pytest.raises(RateLimited) as info:
        call_api(path="/c")
    err = info.value
    assert isinstance(err, RateLimitedError)
    assert (err.code, err.http_status, err.recoverable) == ("RATE_LIMIT_EXCEEDED", 429, True)
    assert err.retry_after == 45.0
    h.clock.advance(err.retry_after)
    assert call_api(path="/d") == "ok"


def test_a_tool_resolved_while_the_window_is_full_raises_rate_limited(
    h: Harness, tools: agents.GovernedTools
) -> None:
    call_api = tools.tool("api.call")(lambda **p: "ok")
    h.resolve()
    h.execute("api.call", {"path": "/a"})
    h.execute("api.call", {"path": "/b"})
    h.clock.advance(20)
    with pytest.raises(RateLimited) as info:
        call_api(path="/c")  # its first resolution denies api.call for the full window
    assert "api.call" in tools.resolution.denied_action_ids
    assert info.value.retry_after == 40.0
    h.clock.advance(40)
    assert call_api(path="/c") == "ok"


def test_a_spent_budget_raises_rate_limited(tools: agents.GovernedTools) -> None:
    use = tools.tool("credit.use")(lambda: "ok")
    use()
    use()
    with pytest.raises(RateLimited) as info:
        use()
    assert info.value.code == "BUDGET_EXCEEDED"
    assert info.value.retry_after is None


def test_a_gated_call_raises_approval_pending_then_runs(
    h: Harness, tools: agents.GovernedTools
) -> None:
    refund = tools.tool("payment.refund")(lambda order_id, amount: {"refunded": amount})
    with pytest.raises(ApprovalPending) as info:
        refund(order_id="o-1", amount=20)
    err = info.value
    assert isinstance(err, ApprovalRequiredError)
    assert (err.code, err.http_status, err.recoverable) == ("APPROVAL_REQUIRED", 423, True)
    assert err.approval_id == tools.resolution.decision.approval_id
    assert err.parameters_hash == value_hash({"order_id": "o-1", "amount": 20})
    assert err.approval_id is not None
    h.rt.approve(err.approval_id, "alice")
    assert refund(order_id="o-1", amount=20) == {"refunded": 20}


def test_a_rejected_call_raises_action_denied(h: Harness, tools: agents.GovernedTools) -> None:
    refund = tools.tool("payment.refund")(lambda **p: "refunded")
    with pytest.raises(ApprovalPending) as pending:
        refund(order_id="o-1", amount=20)
    assert pending.value.approval_id is not None
    h.rt.reject(pending.value.approval_id, "bob")
    with pytest.raises(ActionDenied) as info:
        refund(order_id="o-1", amount=20)
    assert info.value.code == "APPROVAL_REJECTED"
    assert "bob" in str(info.value)


def test_a_failing_call_raises_action_failed(h: Harness, tools: agents.GovernedTools) -> None:
    @tools.tool("api.echo")
    def flaky() -> None:
        raise TimeoutError("upstream timed out")

    with pytest.raises(ActionFailed) as info:
        flaky()
    err = info.value
    assert isinstance(err, UpstreamError)
    assert (err.code, err.http_status) == ("EXECUTION_FAILED", 502)
    assert str(err) == "upstream timed out"
    assert h.types()[-1] == "action.failed"


def test_invalid_parameters_raise_action_failed_with_the_paths(tools: agents.GovernedTools) -> None:
    call_api = tools.tool("api.call")(lambda **p: "ok")
    with pytest.raises(ActionFailed) as info:
        call_api(path=5)
    assert info.value.code == "INVALID_PARAMETERS"
    assert [e["path"] for e in info.value.details["errors"]] == ["/path"]


def test_refusals_are_exceptions_the_agent_can_catch_as_cra_errors(
    tools: agents.GovernedTools,
) -> None:
    drop = tools.tool("db.drop")(lambda: None)
    with pytest.raises(cra.CraError) as info:
        drop()
    body = info.value.to_dict()["error"]
    assert body["code"] == "ACTION_NOT_ALLOWED"
    assert body["message"] == "Databases are never dropped"


# -- tool definitions -------------------------------------------------------------------


def tool_atlas() -> dict[str, Any]:
    return make_atlas(
        "org.test.tools",
        actions=[
            action(
                "ticket.lookup",
                description="Look a ticket up",
                parameters_schema={
                    "type": "object",
                    "properties": {"ticket_id": {"type": "string"}},
                    "required": ["ticket_id"],
                },
                idempotent=True,
            ),
            action("ticket.close_all", risk_tier="high"),
            action("ticket.note", parameters_schema={"properties": {"text": {"type": "string"}}}),
            action("ticket.v2.merge", description="Merge two tickets", requires_confirmation=True),
            action("ticket.delete"),
        ],
        policies=[
            policy("no-delete", "deny", ["*.delete"]),
            policy("allow", "allow", ["ticket.*"]),
        ],
    )


@pytest.fixture
def res() -> Iterator[cra.CARPResolution]:
    with Harness(tool_atlas(), executors=False) as h:
        yield h.resolve()


ALLOWED = ["ticket.lookup", "ticket.close_all", "ticket.note", "ticket.v2.merge"]


def assert_object_schema(schema: Any) -> None:
    assert isinstance(schema, dict)
    assert schema["type"] == "object"
    assert isinstance(schema.get("properties", {}), dict)


def test_openai_function_tools(res: cra.CARPResolution) -> None:
    tools = res.to_openai_tools()
    assert len(tools) == len(ALLOWED)
    for tool in tools:
        assert set(tool) == {"type", "function"}
        assert tool["type"] == "function"
        fn = tool["function"]
        assert set(fn) == {"name", "description", "parameters"}
        assert NAME_RE.match(fn["name"])
        assert isinstance(fn["description"], str) and fn["description"]
        assert_object_schema(fn["parameters"])
    names = [t["function"]["name"] for t in tools]
    assert names == ["ticket__lookup", "ticket__close_all", "ticket__note", "ticket__v2__merge"]
    lookup = tools[0]["function"]
    assert lookup["description"] == "Look a ticket up"
    assert lookup["parameters"] == {
        "type": "object",
        "properties": {"ticket_id": {"type": "string"}},
        "required": ["ticket_id"],
    }
    json.dumps(tools)


def test_anthropic_tools(res: cra.CARPResolution) -> None:
    tools = res.to_anthropic_tools()
    assert len(tools) == len(ALLOWED)
    for tool in tools:
        assert set(tool) == {"name", "description", "input_schema"}
        assert NAME_RE.match(tool["name"])
        assert isinstance(tool["description"], str) and tool["description"]
        assert_object_schema(tool["input_schema"])
    openai = {t["function"]["name"]: t["function"]["parameters"] for t in res.to_openai_tools()}
    assert {t["name"]: t["input_schema"] for t in tools} == openai
    json.dumps(tools)


def test_mcp_tools(res: cra.CARPResolution) -> None:
    tools = res.to_mcp_tools()
    # The same names as in every other format (dots become `__`).
    assert [t["name"] for t in tools] == [cra.carp.tool_name(a) for a in ALLOWED]
    openai = [t["function"]["name"] for t in res.to_openai_tools()]
    assert [t["name"] for t in tools] == openai
    for tool in tools:
        assert {"name", "description", "inputSchema"} <= set(tool)
        assert set(tool) <= {"name", "title", "description", "inputSchema", "annotations"}
        assert MCP_NAME_RE.match(tool["name"])
        assert isinstance(tool["description"], str)
        assert_object_schema(tool["inputSchema"])
        annotations = tool.get("annotations", {})
        assert set(annotations) <= MCP_ANNOTATIONS
        for key, value in annotations.items():
            assert isinstance(value, str if key == "title" else bool)
    by_name = {t["name"]: t for t in tools}
    assert by_name["ticket__lookup"]["annotations"]["idempotentHint"] is True
    assert by_name["ticket__close_all"]["annotations"]["destructiveHint"] is True
    assert by_name["ticket__lookup"]["annotations"]["destructiveHint"] is False
    assert len(by_name) == len(tools)
    json.dumps(tools)


def test_every_schema_is_an_object_schema(res: cra.CARPResolution) -> None:
    empty = {"type": "object", "properties": {}}
    openai = {t["function"]["name"]: t["function"]["parameters"] for t in res.to_openai_tools()}
    assert openai["ticket__close_all"] == empty
    # A schema that leaves out `"type"` gets it.
    assert openai["ticket__note"] == {"type": "object", "properties": {"text": {"type": "string"}}}
    mcp = {t["name"]: t["inputSchema"] for t in res.to_mcp_tools()}
    assert mcp["ticket__close_all"] == empty


def test_tool_definitions_do_not_share_state_with_the_resolution(res: cra.CARPResolution) -> None:
    first = res.to_openai_tools()
    first[0]["function"]["parameters"]["properties"]["hacked"] = {}
    assert "hacked" not in res.to_openai_tools()[0]["function"]["parameters"]["properties"]
    assert "hacked" not in (res.allowed_actions[0].parameters_schema or {}).get("properties", {})


def test_gated_tools_say_so(res: cra.CARPResolution) -> None:
    descriptions = {t["name"]: t["description"] for t in res.to_anthropic_tools()}
    assert "approval" in descriptions["ticket__v2__merge"]
    assert descriptions["ticket__v2__merge"].startswith("Merge two tickets")
    assert "approval" not in descriptions["ticket__lookup"]


def test_denied_actions_are_not_tools(res: cra.CARPResolution) -> None:
    for tools in (res.to_openai_tools(), res.to_anthropic_tools()):
        assert all("delete" not in json.dumps(t) for t in tools)
    assert all(t["name"] != "ticket.delete" for t in res.to_mcp_tools())


def test_action_for_tool_maps_names_back(res: cra.CARPResolution) -> None:
    for tool in res.to_openai_tools():
        name = tool["function"]["name"]
        action_id = agents.action_for_tool(res, name)
        assert action_id is not None and agents.tool_name(action_id) == name
    assert [agents.action_for_tool(res, t["name"]) for t in res.to_mcp_tools()] == ALLOWED
    assert agents.action_for_tool(res, "ticket__delete") is None
    assert agents.action_for_tool(res, "nothing") is None


def test_module_functions_match_the_methods(res: cra.CARPResolution) -> None:
    assert agents.to_openai_tools(res) == res.to_openai_tools()
    assert agents.to_anthropic_tools(res) == res.to_anthropic_tools()
    assert agents.to_mcp_tools(res) == res.to_mcp_tools()


def test_tool_name_rules() -> None:
    assert agents.tool_name("ticket.lookup") == "ticket__lookup"
    long_id = "a." + "b" * 70
    name = agents.tool_name(long_id)  # shortened with a hash, still a valid name
    assert re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", name) and name != agents.tool_name("a." + "b" * 71)


def test_tool_names_are_unique_within_a_resolution() -> None:
    rt = cra.Runtime(clock_skew_seconds=None)
    rt.load_atlas(
        {
            "atlas_version": "1.0",
            "atlas_id": "org.test.names",
            "version": "1.0.0",
            "name": "Names",
            "actions": [
                {"action_id": "a.b__c", "name": "one"},
                {"action_id": "a__b.c", "name": "two"},
                {"action_id": "x." + "y" * 80, "name": "long"},
            ],
            "policies": [{"policy_id": "all", "type": "allow"}],
        }
    )
    sid = rt.create_session(agent_id="a", goal="g")
    res = rt.resolve(cra.CARPRequest.resolve(sid, "a", "g"))
    for tools, key in ((res.to_openai_tools(), "function"), (res.to_anthropic_tools(), None)):
        names = [t[key]["name"] if key else t["name"] for t in tools]
        assert len(set(names)) == 3
        for n, action_id in zip(names, res.allowed_action_ids):
            assert agents.action_for_tool(res, n) == action_id
    rt.close()


def test_a_model_tool_call_round_trip(h: Harness, tools: agents.GovernedTools) -> None:
    """What an agent loop does: offer the tools, map the model's call back, run it."""
    lookup = tools.tool("api.call")(lambda path, retries=0: {"path": path})
    offered = tools.resolution.to_openai_tools()
    name = next(t["function"]["name"] for t in offered if t["function"]["name"] == "api__call")
    model_call = {"name": name, "arguments": json.dumps({"path": "/tickets/7"})}
    action_id = agents.action_for_tool(tools.resolution, model_call["name"])
    assert action_id == "api.call"
    assert tools.call(action_id, **json.loads(model_call["arguments"])) == {"path": "/tickets/7"}
    assert lookup(path="/x") == {"path": "/x"}
