"""`cra mcp serve`: a real MCP client lists and calls a session's allowed
actions, over stdio and over streamable HTTP on loopback; every call goes
through the runtime and the trace file verifies afterwards."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Dict

import pytest

pytest.importorskip("mcp")

from mcp import ClientSession, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp_upstream import (
    ATLASES,
    HERE,
    child_env,
    cra_args,
    read_events,
    run_async,
    stdio_params,
    text_of,
)

ATLAS = ATLASES / "mcp_serve.json"
EXECUTORS = "mcp_upstream:SERVE_EXECUTORS"


def serve_argv(trace: Path, *extra: str) -> list[str]:
    return cra_args(
        "mcp", "serve", "--atlas", str(ATLAS), "--executors", EXECUTORS,
        "--trace-file", str(trace), "--agent-id", "notes-agent", *extra,
    )  # fmt: skip


async def _calls(session: ClientSession) -> Dict[str, Any]:
    out: Dict[str, Any] = {"tools": (await session.list_tools()).tools}
    calls = [
        ("add", "notes__add", {"text": "buy milk"}),
        ("add_empty", "notes__add", {"text": ""}),
        ("count_1", "notes__count", {}),
        ("count_2", "notes__count", {}),
        ("purge", "notes__purge", {}),
        ("pay", "payment__send", {"amount": 5}),
        ("nothing", "nothing at all", {}),
    ]
    for key, tool, args in calls:
        out[key] = await session.call_tool(tool, args)
    return out


async def _stdio_run(trace: Path) -> Dict[str, Any]:
    async with stdio_client(stdio_params(serve_argv(trace))) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            return await _calls(session)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Any]:
    trace = tmp_path_factory.mktemp("mcp_serve") / "serve.trace.jsonl"
    out: Dict[str, Any] = run_async(lambda: _stdio_run(trace), timeout=90)
    out["trace"] = trace
    return out


def test_tools_are_the_allowed_actions(run: Dict[str, Any]) -> None:
    tools = {t.name: t for t in run["tools"]}
    assert sorted(tools) == ["notes__add", "notes__count", "payment__send"]
    assert tools["notes__add"].input_schema["required"] == ["text"]
    assert tools["notes__add"].description == "Store a note"


def test_allowed_calls_run_their_executors(run: Dict[str, Any]) -> None:
    assert not run["add"].is_error
    assert run["add"].structured_content == {"stored": "buy milk", "length": 8}
    assert text_of(run["count_1"]) == "3"


def test_refusals_are_tool_errors_naming_the_code(run: Dict[str, Any]) -> None:
    expected = {
        "add_empty": "INVALID_PARAMETERS: ",
        "count_2": "RATE_LIMIT_EXCEEDED: ",
        "purge": "ACTION_NOT_ALLOWED: Notes are kept forever",
        "pay": "APPROVAL_REQUIRED: ",
        "nothing": "ACTION_NOT_ALLOWED: ",
    }
    for key, start in expected.items():
        assert run[key].is_error, key
        assert text_of(run[key]).startswith(start), (key, text_of(run[key]))


def test_trace_verifies_and_holds_the_calls(run: Dict[str, Any]) -> None:
    trace: Path = run["trace"]
    done = subprocess.run(cra_args("trace", "verify", str(trace)), capture_output=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    events = read_events(trace)
    executed = [e["payload"]["action_id"] for e in events if e["event_type"] == "action.executed"]
    assert executed == ["notes.add", "notes.count"]
    denied = {e["payload"]["action_id"] for e in events if e["event_type"] == "action.denied"}
    assert {"notes.purge", "notes.add", "notes.count"} <= denied
    assert events[0]["payload"]["agent_id"] == "notes-agent"


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ("mcp_upstream:STRAY_EXECUTORS", 'did you mean "notes.add"'),
        ("mcp_upstream:nothing_here", "nothing_here"),
        ("no_such_module_at_all:X", "no_such_module_at_all"),
        ("mcp_upstream", "MODULE:ATTR"),
        ("mcp_upstream:echo", "not a mapping"),
    ],
)
def test_bad_executors_are_a_startup_error(tmp_path: Path, spec: str, named: str) -> None:
    argv = serve_argv(tmp_path / "t.jsonl")
    argv[argv.index(EXECUTORS)] = spec
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=60, env=child_env(), cwd=HERE,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert named in done.stderr
    assert done.stdout == ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, "cra mcp serve --http exited early"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    pytest.fail("cra mcp serve --http did not listen")


async def _http_run(url: str) -> Dict[str, Any]:
    async with streamable_http_client(url) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            tools = (await session.list_tools()).tools
            added = await session.call_tool("notes__add", {"text": "over http"})
            purged = await session.call_tool("notes__purge", {})
            return {"tools": tools, "add": added, "purge": purged}


def test_streamable_http_on_loopback(tmp_path: Path) -> None:
    port = _free_port()
    trace = tmp_path / "http.trace.jsonl"
    argv = serve_argv(trace, "--http", "--port", str(port))
    proc = subprocess.Popen(
        argv, env=child_env(), cwd=HERE, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        _wait_for_port(port, proc)
        out = run_async(lambda: _http_run(f"http://127.0.0.1:{port}/mcp"), timeout=60)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "notes__add" in {t.name for t in out["tools"]}
    assert out["add"].structured_content == {"stored": "over http", "length": 9}
    assert text_of(out["purge"]).startswith("ACTION_NOT_ALLOWED: ")
    done = subprocess.run(cra_args("trace", "verify", str(trace)), capture_output=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert any(e["event_type"] == "session.ended" for e in read_events(trace))
