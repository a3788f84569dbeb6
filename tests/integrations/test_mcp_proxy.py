"""`cra mcp proxy`: a real MCP client talks to the proxy, which governs a real
upstream MCP server (`mcp_upstream.py`) started as its child.

One proxy run (module fixture) makes every call; the tests then check its
answers one by one, and the trace file it left behind.
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import Any, Dict

import pytest

pytest.importorskip("mcp")

from mcp import ClientSession, stdio_client
from mcp_upstream import (
    ATLASES,
    cra_args,
    read_events,
    run_async,
    stdio_params,
    text_of,
    upstream_args,
)

ATLAS = ATLASES / "mcp_proxy.json"


def proxy_argv(trace: Path, *extra: str) -> list[str]:
    return cra_args(
        "mcp", "proxy", "--atlas", str(ATLAS), "--trace-file", str(trace), *extra,
        "--", *upstream_args(),
    )  # fmt: skip


async def _session_run(trace: Path) -> Dict[str, Any]:
    """Every call of the tests, in one proxy session."""
    out: Dict[str, Any] = {}
    async with stdio_client(stdio_params(proxy_argv(trace))) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            out["tools"] = (await session.list_tools()).tools
            calls = [
                ("echo", "echo", {"message": "hello"}),
                ("echo_too_long", "echo", {"message": "x" * 60}),
                ("echo_extra", "echo", {"message": "hi", "loud": True}),
                ("add_1", "add", {"a": 1, "b": 2}),
                ("add_2", "add", {"a": 3, "b": 4}),
                ("add_3", "add", {"a": 5, "b": 6}),
                ("delete", "delete_everything", {}),
                ("transfer", "transfer", {"amount": 10, "to": "bob"}),
                ("fail", "fail", {"reason": "disk on fire"}),
                ("secret", "secret", {}),
                ("bogus", "No-Such-Tool", {}),
                ("reserved", "echo", {"message": "hi", "wait_for_approval": 60}),
            ]
            for key, tool, args in calls:
                out[key] = await session.call_tool(tool, args)
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Any]:
    trace = tmp_path_factory.mktemp("mcp_proxy") / "proxy.trace.jsonl"
    out: Dict[str, Any] = run_async(lambda: _session_run(trace), timeout=90)
    out["trace"] = trace
    return out


def test_tools_list_shows_only_allowed_upstream_tools(run: Dict[str, Any]) -> None:
    tools = {t.name: t for t in run["tools"]}
    assert sorted(tools) == ["add", "echo", "fail", "transfer"]
    # Upstream names, schemas and descriptions, untouched.
    assert tools["echo"].description == "Returns the message unchanged."
    assert tools["add"].input_schema["properties"].keys() == {"a", "b"}


def test_allowed_call_is_forwarded(run: Dict[str, Any]) -> None:
    assert not run["echo"].is_error
    assert text_of(run["echo"]) == "hello"
    assert run["add_1"].structured_content == {"result": 3.0}


def test_denied_tool_is_refused_with_its_reason(run: Dict[str, Any]) -> None:
    r = run["delete"]
    assert r.is_error
    assert text_of(r) == "ACTION_NOT_ALLOWED: Nobody deletes everything"


def test_parameters_are_checked_against_the_atlas_schema(run: Dict[str, Any]) -> None:
    for key in ("echo_too_long", "echo_extra"):
        assert run[key].is_error
        assert text_of(run[key]).startswith("INVALID_PARAMETERS: ")


def test_rate_limit_refuses_the_third_call(run: Dict[str, Any]) -> None:
    assert not run["add_2"].is_error and text_of(run["add_2"]) == "7.0"
    assert run["add_3"].is_error
    assert text_of(run["add_3"]).startswith("RATE_LIMIT_EXCEEDED: ")


def test_approval_gated_call_waits(run: Dict[str, Any]) -> None:
    r = run["transfer"]
    assert r.is_error
    assert text_of(r).startswith("APPROVAL_REQUIRED: ")
    assert "approval_id" in text_of(r) or "approval" in text_of(r)


def test_upstream_tool_error_passes_through(run: Dict[str, Any]) -> None:
    r = run["fail"]
    assert r.is_error
    # The upstream's own answer, not a refusal of cra's.
    assert text_of(r) == "Error executing tool fail: upstream failure: disk on fire"


def test_no_argument_name_is_reserved_by_cra(run: Dict[str, Any]) -> None:
    # `wait_for_approval` is a parameter like any other: the action's schema
    # does not name it, so the call is refused as an undeclared parameter.
    assert run["reserved"].is_error
    text = text_of(run["reserved"])
    assert text.startswith("INVALID_PARAMETERS") and "wait_for_approval" in text


def test_tool_without_action_is_refused(run: Dict[str, Any]) -> None:
    for key in ("secret", "bogus"):
        assert run[key].is_error
        assert text_of(run[key]).startswith("ACTION_NOT_ALLOWED: ")


def test_trace_verifies_and_holds_the_calls(run: Dict[str, Any]) -> None:
    trace: Path = run["trace"]
    done = subprocess.run(cra_args("trace", "verify", str(trace)), capture_output=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    events = read_events(trace)
    by_type: Dict[str, list[str]] = {}
    for e in events:
        by_type.setdefault(e["event_type"], []).append(e["payload"].get("action_id", ""))
    assert by_type["action.executed"] == ["mcp.echo", "mcp.add", "mcp.add"]
    assert by_type["action.failed"] == ["mcp.fail"]
    assert {"mcp.delete_everything", "mcp.secret"} <= set(by_type["action.denied"])
    assert events[0]["payload"]["agent_id"] == "mcp-proxy"
    assert events[-1]["event_type"] == "session.ended"


def test_proxy_without_upstream_command_is_a_usage_error(tmp_path: Path) -> None:
    argv = cra_args("mcp", "proxy", "--atlas", str(ATLAS))
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
    )
    assert done.returncode == 2
    assert "after --" in done.stderr


def test_proxy_with_missing_upstream_fails_cleanly(tmp_path: Path) -> None:
    argv = [*proxy_argv(tmp_path / "t.jsonl")[: -len(upstream_args())], str(tmp_path / "nope")]
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
    )
    assert done.returncode == 2
    assert "error: cra mcp" in done.stderr


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(c) for c in path.read_text().split()] if path.exists() else []


def test_sigterm_stops_the_upstream_and_flushes_the_trace(tmp_path: Path) -> None:
    trace = tmp_path / "sigterm.trace.jsonl"
    proc = subprocess.Popen(
        proxy_argv(trace), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert proc.stdin is not None and proc.stdout is not None
        hello = {
            "jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                       "clientInfo": {"name": "test", "version": "0"}},
        }  # fmt: skip
        proc.stdin.write((json.dumps(hello) + "\n").encode())
        proc.stdin.flush()
        assert json.loads(proc.stdout.readline())["id"] == 1  # serving: upstream is up
        children = _children(proc.pid)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)
    assert proc.returncode == 0
    for child in children:
        assert not Path(f"/proc/{child}").exists() or _is_zombie(child)
    assert read_events(trace)[-1]["event_type"] == "session.ended"


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True
