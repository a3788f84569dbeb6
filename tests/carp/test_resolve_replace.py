"""Atomic atlas replacement under concurrent resolves: every resolve sees
either the old atlas or the new one, never a mix.
"""

from __future__ import annotations

import threading
from typing import Any

import cra
from resolve_helpers import (
    action,
    make_atlas,
    policy,
    request,
)

SWAP_A = make_atlas(
    "org.test.swap",
    version="1.0.0",
    actions=[action("swap.one"), action("swap.two")],
    policies=[policy("allow-a", "allow")],
    context_packs=[{"pack_id": "a", "name": "A", "content": "version A"}],
    default_ttl_seconds=100,
)


SWAP_B = make_atlas(
    "org.test.swap",
    version="2.0.0",
    actions=[action("swap.one"), action("swap.two"), action("swap.three")],
    policies=[policy("deny-b", "deny", reason="version B says no")],
    context_packs=[{"pack_id": "b", "name": "B", "content": "version B"}],
    default_ttl_seconds=200,
)


def kind_of(doc: dict[str, Any]) -> str:
    a = {
        "decision": ("allow", None),
        "allowed": ["swap.one", "swap.two"],
        "denied": [],
        "blocks": [("a", "version A")],
        "ttl": 100,
    }
    b = {
        "decision": ("deny", "version B says no"),
        "allowed": [],
        "denied": [("swap.one", "deny-b"), ("swap.two", "deny-b"), ("swap.three", "deny-b")],
        "blocks": [("b", "version B")],
        "ttl": 200,
    }
    got = {
        "decision": (doc["decision"]["type"], doc["decision"]["reason"]),
        "allowed": [x["action_id"] for x in doc["allowed_actions"]],
        "denied": [(x["action_id"], x["policy_id"]) for x in doc["denied_actions"]],
        "blocks": [(x["block_id"], x["content"]) for x in doc["context_blocks"]],
        "ttl": doc["ttl_seconds"],
    }
    if got == a:
        return "A"
    if got == b:
        return "B"
    raise AssertionError(f"a mix of versions: {got}")


def test_replacing_an_atlas_is_atomic_for_concurrent_resolves(rt: cra.Runtime) -> None:
    rt.load_atlas(SWAP_A)
    sessions = [rt.create_session(f"agent-{i}", "Swap") for i in range(4)]
    results: list[cra.CARPResolution] = []
    failures: list[BaseException] = []
    swaps = [0]
    done = threading.Event()
    lock = threading.Lock()

    def replacer() -> None:
        try:
            while not done.is_set():
                rt.load_atlas(SWAP_B if swaps[0] % 2 == 0 else SWAP_A, replace=True)
                swaps[0] += 1
        except BaseException as e:
            failures.append(e)

    def resolver(sid: str) -> None:
        mine: list[cra.CARPResolution] = []
        try:
            while len(mine) < 5_000 and (len(mine) < 150 or swaps[0] < 40):
                mine.append(rt.resolve(request(rt, sid, "Swap")))
        except BaseException as e:
            failures.append(e)
        with lock:
            results.extend(mine)

    swapper = threading.Thread(target=replacer)
    workers = [threading.Thread(target=resolver, args=(sessions[i % 4],)) for i in range(8)]
    swapper.start()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    done.set()
    swapper.join()
    assert failures == []
    kinds: dict[str, str] = {}
    for res in results:
        kinds[res.resolution_id] = kind_of(res.to_dict())
    assert set(kinds.values()) == {"A", "B"}, (swaps[0], len(results))

    # Every chain verifies, and the events of each resolve tell the same story.
    total = 0
    for sid in sessions:
        assert rt.verify(sid).valid
        by_span: dict[str, list[dict[str, Any]]] = {}
        for e in rt.events(sid)[1:]:
            by_span.setdefault(e.span_id, []).append(
                {"event_type": e.event_type, "payload": e.payload}
            )
        for span in by_span.values():
            done_event = span[-1]
            assert done_event["event_type"] == "carp.resolution.completed"
            kind = kinds[done_event["payload"]["resolution_id"]]
            policies = {
                e["payload"]["policy_id"] for e in span if e["event_type"] == "policy.evaluated"
            }
            blocks = [
                e["payload"]["block_id"] for e in span if e["event_type"] == "context.injected"
            ]
            assert (policies, blocks) == (
                ({"allow-a"}, ["a"]) if kind == "A" else ({"deny-b"}, ["b"])
            )
            total += 1
    assert total == len(results)
