"""Helpers of the framework adapter tests: an atlas of small tools, a harness
with a governed session whose executors record their calls, and a scripted
model for the OpenAI Agents SDK (no network: it answers from a script)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import cra
from execute_helpers import Harness
from resolve_helpers import action, make_atlas, policy

ADAPTERS_ID = "org.test.adapters"

LOOKUP_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["ticket_id"],
    "additionalProperties": False,
    "properties": {"ticket_id": {"type": "string", "pattern": "^T-[0-9]+$"}},
}
#: `tags` is optional: strict mode would make it required, so no strict mode here.
NOTE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["text"],
    "properties": {
        "text": {"type": "string"},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
}
WEATHER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["city"],
    "properties": {"city": {"type": "string", "minLength": 1}, "units": {"type": "string"}},
}
REFUND_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["order_id", "amount"],
    "properties": {"order_id": {"type": "string"}, "amount": {"type": "number"}},
}


def adapters_atlas() -> dict[str, Any]:
    """Tickets to look up and annotate, the weather, refunds behind a human,
    a rate-limited ping and a denied delete."""
    actions = [
        action("ticket.lookup", description="Fetch a ticket", parameters_schema=LOOKUP_SCHEMA),
        action("ticket.note", description="Add a note to a ticket", parameters_schema=NOTE_SCHEMA),
        action("weather.get", description="Current weather", parameters_schema=WEATHER_SCHEMA),
        action("refund.issue", description="Refund an order", parameters_schema=REFUND_SCHEMA),
        action("ping.send", description="Ping"),
        action("ticket.delete", description="Delete a ticket"),
    ]
    policies = [
        policy("never-delete", "deny", ["*.delete"], reason="Tickets are never deleted"),
        policy("refunds-need-a-human", "require_approval", ["refund.*"]),
        policy(
            "ping-rate",
            "rate_limit",
            ["ping.send"],
            parameters={"max_calls": 1, "window_seconds": 60},
        ),
        policy("allow", "allow", ["ticket.*", "weather.*", "refund.*", "ping.*"]),
    ]
    return make_atlas(ADAPTERS_ID, name="Adapters", actions=actions, policies=policies)


class Recorder:
    """An executor that keeps the parameters of every call."""

    def __init__(self, result: Any = None) -> None:
        self.calls: list[dict[str, Any]] = []
        self.result = result

    def __call__(self, **parameters: Any) -> Any:
        self.calls.append(parameters)
        return self.result if self.result is not None else {"ok": True, **parameters}


def harness() -> Harness:
    """A runtime on a manual clock with the adapters atlas and one session."""
    return Harness(adapters_atlas(), executors=False, goal="Help the customer")


def executed(h: Harness) -> list[dict[str, Any]]:
    """The payloads of the session's `action.executed` events."""
    return [e.payload for e in h.events() if e.event_type == "action.executed"]


def governed_with(h: Harness, executors: dict[str, Recorder]) -> cra.agents.GovernedTools:
    """The session's governed tools, each action of `executors` run by its recorder."""
    gt = h.rt.governed(h.sid)
    for action_id, fn in executors.items():
        gt.register(action_id, fn)
    return gt


# -- a scripted model for the OpenAI Agents SDK ---------------------------------------


def call(name: str, arguments: Any, call_id: str) -> Any:
    """A function-call output item (arguments: a value to dump, or raw JSON text)."""
    from openai.types.responses import ResponseFunctionToolCall

    text = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return ResponseFunctionToolCall(
        type="function_call", call_id=call_id, name=name, arguments=text, id=f"fc_{call_id}"
    )


def say(text: str) -> Any:
    """An assistant message output item."""
    from openai.types.responses import ResponseOutputMessage, ResponseOutputText

    content = [ResponseOutputText(type="output_text", text=text, annotations=[])]
    return ResponseOutputMessage(
        id="msg_1", type="message", role="assistant", status="completed", content=content
    )


def scripted_model(*turns: list[Any]) -> Any:
    """A `Model` that answers turn after turn from `turns` and keeps what it was given."""
    from agents.items import ModelResponse
    from agents.models.interface import Model
    from agents.usage import Usage

    class Scripted(Model):
        def __init__(self) -> None:
            self.script: Iterator[list[Any]] = iter(turns)
            self.inputs: list[Any] = []
            self.tools: list[Any] = []

        async def get_response(
            self,
            system_instructions: str | None,
            input: Any,
            model_settings: Any,
            tools: list[Any],
            *args: Any,
            **kwargs: Any,
        ) -> ModelResponse:
            self.inputs.append(json.loads(json.dumps(input, default=str)))
            self.tools = list(tools)
            return ModelResponse(output=next(self.script), usage=Usage(), response_id=None)

        async def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            # The tests run with `Runner.run`, which never streams.
            raise AssertionError("the scripted model does not stream")
            yield

    return Scripted()


def tool_outputs(model_input: Any) -> dict[str, str]:
    """call id -> the output the model was given for it."""
    if not isinstance(model_input, list):
        return {}
    return {
        item["call_id"]: item["output"]
        for item in model_input
        if isinstance(item, dict) and item.get("type") == "function_call_output"
    }
