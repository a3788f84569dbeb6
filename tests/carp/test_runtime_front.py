"""`Runtime.resolve` / `Runtime.execute` as the core serves them (`_core.Front`):
the layer's result classes made by the core, failed requests named in their
errors, and request text read through the core's cache of recurring strings.
"""

from __future__ import annotations

import uuid
from typing import Any

import cra
import pytest
from cra.errors import CraError
from cra.execute import ExecuteResponse
from resolve_helpers import RESOURCES, make_atlas, new_session, request


def goal_of(rt: cra.Runtime, sid: str) -> str:
    """The goal of the session's last `carp.request.received` event."""
    received = [e for e in rt.events(sid) if e.event_type == "carp.request.received"]
    goal: str = received[-1].payload["goal"]
    return goal


def test_results_are_the_layer_classes_and_immutable(rt: cra.Runtime) -> None:
    rt.load_atlas(RESOURCES)
    sid = new_session(rt)
    res = rt.resolve(request(rt, sid))
    assert type(res) is cra.CARPResolution
    assert res.session_id == sid and res.is_allowed("resource.get")
    with pytest.raises(AttributeError):
        res.anything = 1  # type: ignore[attr-defined]
    rt.register_executor("resource.get", lambda resource_id: {"id": resource_id})
    req = cra.CARPRequest.execute(
        sid, "agent-1", "Do the work", res.resolution_id, "resource.get", {"resource_id": "r-1"}
    )
    out = rt.execute(req)
    assert type(out) is ExecuteResponse and out.result == {"id": "r-1"}
    with pytest.raises(AttributeError):
        out.status = "x"  # type: ignore[misc]
    # The unbound methods are the same calls.
    again = cra.Runtime.resolve(rt, request(rt, sid))
    assert type(again) is cra.CARPResolution and again.request_id != res.request_id


def test_a_failed_resolve_names_its_request(rt: cra.Runtime) -> None:
    rt.load_atlas(RESOURCES)
    sid = new_session(rt)
    req = request(rt, sid, atlas_ids=["org.cra.nowhere"])
    with pytest.raises(CraError) as err:
        rt.resolve(req)
    assert err.value.request_id == req["request_id"]
    assert err.value.to_dict()["error"]["request_id"] == req["request_id"]


def test_a_failed_execute_names_its_request(rt: cra.Runtime) -> None:
    rt.load_atlas(RESOURCES)
    sid = new_session(rt)
    req = cra.CARPRequest.execute(
        sid, "agent-1", "Do the work", str(uuid.uuid4()), "resource.get", {"id": "r-1"}
    )
    with pytest.raises(CraError) as err:
        rt.execute(req)
    assert err.value.code == "RESOLUTION_NOT_FOUND"
    assert err.value.request_id == req["request_id"]


@pytest.mark.parametrize("bad", [[1, 2], "text", 42, {"request_id": 7}, {"request_id": None}])
def test_a_request_without_a_readable_id_fails_unnamed(rt: cra.Runtime, bad: Any) -> None:
    with pytest.raises(CraError) as err:
        rt.resolve(bad)
    assert err.value.request_id is None


def test_recurring_and_one_off_strings_read_right(rt: cra.Runtime) -> None:
    """The same goal object again and again, fresh objects with the same or
    other text, and str subclasses: each request's own text is recorded."""
    rt.load_atlas(RESOURCES)
    sid = new_session(rt)

    class Text(str):
        pass

    recurring = "Manage resources"
    for i in range(40):
        goal = recurring if i % 2 else "".join(["goal ", str(i)])
        rt.resolve(request(rt, sid, goal))
        assert goal_of(rt, sid) == goal
        same_text = "".join(["Manage ", "resources"])
        assert same_text is not recurring
        rt.resolve(request(rt, sid, same_text))
        assert goal_of(rt, sid) == recurring
        sub = Text(f"subclass {i}")
        rt.resolve(request(rt, sid, sub))
        rt.resolve(request(rt, sid, sub))
        assert goal_of(rt, sid) == f"subclass {i}"


def test_keywords_match_non_ascii_text(rt: cra.Runtime) -> None:
    pack = {
        "pack_id": "k",
        "name": "K",
        "content": "x",
        "conditions": {"keywords": ["ÜBERWEISUNG", "straße"]},
    }
    rt.load_atlas(make_atlas("org.test.kw", context_packs=[pack]))
    sid = new_session(rt)
    hits = [
        rt.resolve(request(rt, sid, goal)).context_blocks
        for goal in ("eine Überweisung senden", "STRASSE", "die Straße", "Ueberweisung")
    ]
    assert [[b.block_id for b in blocks] for blocks in hits] == [["k"], [], ["k"], []]


def _front_with(rt: cra.Runtime, resolution_class: type, response_class: type) -> Any:
    from cra import _core
    from cra.execute import settle

    return _core.Front(rt._core, resolution_class, response_class, {}, settle, {}, lambda r: None)


def test_result_classes_of_any_slot_layout_hold_the_handle(rt: cra.Runtime) -> None:
    """The core stores its handle straight into `_r`, wherever the class's
    layout puts that slot among others; the instance owns it like any slot."""
    import gc
    import sys

    rt.load_atlas(RESOURCES)
    sid = new_session(rt)
    layouts = [("_r",), ("a", "_r"), ("_r", "zz", "b"), ("_a", "_b", "_c", "_r", "_z")]
    for slots in layouts:
        cls = type("Result", (), {"__slots__": slots})
        front = _front_with(rt, cls, cls)
        res = front.resolve(request(rt, sid))
        assert type(res) is cls
        handle = res._r
        assert type(handle).__name__ == "Resolution" and handle.session_id == sid
        assert handle in gc.get_referents(res)
        assert sys.getrefcount(handle) == 3  # the slot, `handle`, the call's argument
        for other in slots:
            if other != "_r":
                with pytest.raises(AttributeError):
                    getattr(res, other)
        del res
        assert sys.getrefcount(handle) == 2


def test_a_result_class_with_a_constructor_is_called(rt: cra.Runtime) -> None:
    """A class with its own `__init__` or `__new__` is made by calling it."""
    rt.load_atlas(RESOURCES)
    sid = new_session(rt)
    made: list[str] = []

    class WithInit:
        __slots__ = ("_r",)

        def __init__(self) -> None:
            made.append("init")

    class WithNew:
        __slots__ = ("_r",)

        def __new__(cls) -> Any:
            made.append("new")
            return super().__new__(cls)

    for cls in (WithInit, WithNew):
        res = _front_with(rt, cls, cls).resolve(request(rt, sid))
        assert type(res) is cls and res._r.session_id == sid
    assert made == ["init", "new"]


def test_an_action_id_of_a_str_subclass_finds_its_executor(rt: cra.Runtime) -> None:
    """The registry is searched with the request's own action id object only
    when it is a plain `str`; a subclass with its own hash is found by text."""

    class Odd(str):
        def __hash__(self) -> int:
            return 1

        def __eq__(self, other: object) -> bool:
            return False

    rt.load_atlas(RESOURCES)
    sid = new_session(rt)
    rt.register_executor("resource.get", lambda resource_id: {"id": resource_id})
    for action_id in ("resource.get", "".join(["resource", ".get"]), Odd("resource.get")):
        res = rt.resolve(request(rt, sid))
        req = cra.CARPRequest.execute(
            sid, "agent-1", "Do the work", res.resolution_id, action_id, {"resource_id": "r-1"}
        )
        out = rt.execute(req)
        assert out.status == "success" and out.result == {"id": "r-1"}, out.to_dict()
