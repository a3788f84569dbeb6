"""Helpers of the execute, approval, limit, idempotency, validate, timing and
agent tests: an operations atlas, a harness on a manual clock that builds
requests, and independent references for hashes (hashlib, blake3, json)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import blake3
import cra
from cra.execute import ExecuteResponse
from cra.timing import ManualClock
from resolve_helpers import action, make_atlas, policy

#: A fixed start for manual clocks: 2027-01-15T08:00:00Z.
START = 1_800_000_000.0
START_TS = "2027-01-15T08:00:00.000000Z"

OPS_ID = "org.test.ops"

#: The keys of an ExecuteResponse as the protocol's JSON.
RESPONSE_KEYS = {
    "carp_version",
    "execution_id",
    "request_id",
    "resolution_id",
    "timestamp",
    "status",
    "result",
    "error",
    "trace_id",
}

CALL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["path"],
    "properties": {
        "path": {"type": "string", "pattern": "^/"},
        "retries": {"type": "integer", "minimum": 0, "maximum": 3},
    },
    "additionalProperties": False,
}
REFUND_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["order_id", "amount"],
    "properties": {
        "order_id": {"type": "string"},
        "amount": {"type": "number", "exclusiveMinimum": 0},
    },
}
TRANSFER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["to"],
    "properties": {"to": {"type": "string"}},
}
ORDER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["customer", "lines"],
    "properties": {
        "customer": {
            "type": "object",
            "required": ["id"],
            "properties": {"id": {"type": "string"}, "email": {"type": "string"}},
        },
        "lines": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["sku", "qty"],
                "properties": {"sku": {"type": "string"}, "qty": {"type": "integer", "minimum": 1}},
            },
        },
    },
}


def one_refund_per_minute() -> dict[str, Any]:
    """A rate_limit policy: one `payment.refund` per 60 s."""
    return policy(
        "one-refund",
        "rate_limit",
        ["payment.refund"],
        parameters={"max_calls": 1, "window_seconds": 60},
    )


def ops_atlas(
    *,
    atlas_id: str = OPS_ID,
    version: str = "1.0.0",
    rate: tuple[int, float] = (2, 60),
    rate_scope: str = "session",
    budget: float = 2,
    budget_scope: str = "session",
    extra_actions: Sequence[dict[str, Any]] = (),
    extra_policies: Sequence[dict[str, Any]] = (),
    **kw: Any,
) -> dict[str, Any]:
    """An operations atlas: a rate-limited API call, an ungoverned echo, a
    refund that needs a human, credits under a budget (`credit.bulk` costs 5,
    the others 1), an order with a nested schema, a denied drop."""
    max_calls, window = rate
    actions = [
        action("api.call", description="Call the API", parameters_schema=CALL_SCHEMA),
        action("api.echo", description="Echo the parameters back"),
        action("payment.refund", risk_tier="high", parameters_schema=REFUND_SCHEMA),
        action("credit.use"),
        action("credit.bulk"),
        action("credit.transfer", parameters_schema=TRANSFER_SCHEMA),
        action("order.place", parameters_schema=ORDER_SCHEMA),
        action("db.drop"),
        *extra_actions,
    ]
    policies = [
        policy("never-drop", "deny", ["db.*"], reason="Databases are never dropped"),
        policy("refunds-need-a-human", "require_approval", ["payment.refund"]),
        policy(
            "api-rate",
            "rate_limit",
            ["api.call"],
            parameters={"max_calls": max_calls, "window_seconds": window, "scope": rate_scope},
        ),
        policy(
            "credits",
            "budget",
            ["credit.*"],
            parameters={"limit": budget, "costs": {"credit.bulk": 5}, "scope": budget_scope},
        ),
        *extra_policies,
        policy("allow-ops", "allow", ["api.*", "payment.*", "credit.*", "order.*"]),
    ]
    return make_atlas(
        atlas_id, version=version, name="Operations", actions=actions, policies=policies, **kw
    )


def canonical(value: Any) -> str:
    """The protocol's canonical JSON, by the reference definition."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def value_hash(value: Any, algorithm: str = "sha256") -> str:
    """`parameters_hash` / `result_hash` of a value, computed without cra."""
    data = canonical(value).encode("utf-8")
    if algorithm == "blake3":
        return blake3.blake3(data).hexdigest()
    return hashlib.sha256(data).hexdigest()


def echo(**parameters: Any) -> dict[str, Any]:
    """An executor that returns what it was given."""
    return {"echo": parameters}


class Calls:
    """An executor that counts its calls and returns `{"n": count}`."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    def __call__(self, **parameters: Any) -> dict[str, Any]:
        self.seen.append(parameters)
        return {"n": len(self.seen)}

    @property
    def count(self) -> int:
        return len(self.seen)


class Harness:
    """A runtime on a manual clock with one session; builds requests whose
    timestamps follow the clock."""

    def __init__(
        self,
        *atlases: dict[str, Any],
        executors: bool = True,
        agent_id: str = "agent-1",
        goal: str = "Operate",
        start: float = START,
        **options: Any,
    ) -> None:
        self.clock = ManualClock(start=start)
        self.rt = cra.Runtime(clock=self.clock, **options)
        for a in atlases or (ops_atlas(),):
            self.rt.load_atlas(a)
        if executors:
            for info in self.rt.atlases():
                for action_id in info.actions:
                    self.rt.register_executor(action_id, echo)
        self.agent_id = agent_id
        self.goal = goal
        self.sid = self.rt.create_session(agent_id, goal)
        self._last: dict[str, cra.CARPResolution] = {}

    def close(self) -> None:
        self.rt.close(timeout=10)

    def session(self, agent_id: str | None = None, goal: str = "Operate") -> str:
        return self.rt.create_session(agent_id or self.agent_id, goal)

    def agent_of(self, sid: str) -> str:
        agent: str = self.rt.get_session(sid)["agent_id"]
        return agent

    def resolve_request(self, sid: str | None = None, **kw: Any) -> dict[str, Any]:
        sid = sid or self.sid
        kw.setdefault("timestamp", self.rt.timestamp())
        return cra.CARPRequest.resolve(sid, self.agent_of(sid), kw.pop("goal", self.goal), **kw)

    def resolve(self, sid: str | None = None, **kw: Any) -> cra.CARPResolution:
        sid = sid or self.sid
        res = self.rt.resolve(self.resolve_request(sid, **kw))
        self._last[sid] = res
        return res

    def resolution_of(self, sid: str) -> cra.CARPResolution:
        if sid not in self._last:
            self.resolve(sid)
        return self._last[sid]

    def execute_request(
        self,
        action_id: str,
        parameters: dict[str, Any] | None = None,
        *,
        sid: str | None = None,
        resolution: cra.CARPResolution | str | None = None,
        task: dict[str, Any] | None = None,
        **kw: Any,
    ) -> dict[str, Any]:
        sid = sid or self.sid
        if resolution is None:
            resolution = self.resolution_of(sid)
        rid = resolution if isinstance(resolution, str) else resolution.resolution_id
        kw.setdefault("timestamp", self.rt.timestamp())
        req = cra.CARPRequest.execute(
            sid, self.agent_of(sid), self.goal, rid, action_id, parameters or {}, **kw
        )
        if task:
            req["task"].update(task)
        return req

    def execute(
        self, action_id: str, parameters: dict[str, Any] | None = None, **kw: Any
    ) -> ExecuteResponse:
        return self.rt.execute(self.execute_request(action_id, parameters, **kw))

    def count(self, sid: str | None = None) -> int:
        """How many events the session has so far."""
        return len(self.rt.events(sid or self.sid))

    def events(self, sid: str | None = None, start: int = 0) -> list[cra.TRACEEvent]:
        return self.rt.events(sid or self.sid)[start:]

    def types(self, sid: str | None = None, start: int = 0) -> list[str]:
        return [e.event_type for e in self.events(sid, start)]

    def __enter__(self) -> Harness:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def statuses(responses: Sequence[ExecuteResponse]) -> list[str]:
    return [r.status for r in responses]


def code(response: ExecuteResponse) -> str | None:
    return response.error.code if response.error else None


UNKNOWN = "0193a0b0-0000-7000-8000-0000000004ff"


def payload_of(events: list[cra.TRACEEvent], event_type: str) -> dict[str, Any]:
    (found,) = [e.payload for e in events if e.event_type == event_type]
    return found


def outcome_events(h: Harness, action_id: str, params: Any = None, **kw: Any) -> list[Any]:
    n = h.count()
    r = h.execute(action_id, params, **kw)
    return [r, h.events(start=n)]
