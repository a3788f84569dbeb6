"""A trace is untrusted input to the command line (issue 13, finding 7).

What a trace says never drives the terminal: every command shows control
characters (C0, DEL, C1), Unicode bidi controls and line separators taken
from a trace as visible escapes, and `--json` is pure ASCII. A line that is
not an event is named by its file and line number, with exit 2, and never
ends in a traceback. A reader that closes the pipe early (`| head`) ends the
command quietly, with exit 141.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cra
import pytest
from audit_helpers import run_cli, write_trace
from cra.carp import CARPRequest
from cra.demo import AGENT, EXAMPLE_ATLAS
from cra.storage import JSONLStore

#: Clears the screen, homes the cursor, returns the carriage, forges a
#: verdict, then reverses the text, rings the bell, and adds a C1 CSI, DEL
#: and a bidi isolate.
EVIL = "\x1b[2J\x1b[H\rALL CHECKS PASSED\u202e\x07\x9b\x7f\u2066"
#: How the command line shows it.
SHOWN = "\\x1b[2J\\x1b[H\\rALL CHECKS PASSED\\u202e\\x07\\x9b\\x7f\\u2066"

BIDI = {0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)}
CLI = Path(cra.__file__).resolve().parent / "cli"


def unsafe(ch: str) -> bool:
    """A character that must never reach the terminal raw (a newline ends a line)."""
    o = ord(ch)
    return (
        (o < 0x20 and ch != "\n")
        or 0x7F <= o <= 0x9F
        or o in BIDI
        or o in (0x2028, 0x2029)
        or 0xD800 <= o <= 0xDFFF
    )


def assert_terminal_safe(text: str) -> None:
    found = sorted({f"U+{ord(c):04X}" for c in text if unsafe(c)})
    assert not found, f"raw control characters reach the terminal: {found}\n{text!r}"


def strings(doc: Any) -> Iterator[str]:
    """Every string in a JSON document, keys included."""
    if isinstance(doc, str):
        yield doc
    elif isinstance(doc, list):
        for x in doc:
            yield from strings(x)
    elif isinstance(doc, dict):
        for k, v in doc.items():
            yield k
            yield from strings(v)


def crafted(**fields: Any) -> dict[str, Any]:
    """An event line as anyone may write one (its hash is not checked here)."""
    event = {
        "trace_version": "1.0",
        "event_id": "01a24e65-0000-7000-8000-000000000001",
        "trace_id": "01a24e65-0000-7000-8000-000000000002",
        "span_id": "01a24e65-0000-7000-8000-000000000003",
        "parent_span_id": None,
        "session_id": "01a24e65-0000-7000-8000-000000000004",
        "sequence": 0,
        "timestamp": "2026-01-01T00:00:00.000000Z",
        "event_type": "x.note",
        "payload": {},
        "event_hash": "0" * 64,
        "previous_event_hash": "0" * 64,
    }
    event.update(fields)
    return event


@dataclass
class Evil:
    trace: Path  # a valid chain whose goal, payload text and keys are EVIL
    crafted: Path  # that chain plus a line whose session id and event type are EVIL
    replayable: Path  # request id and atlas id EVIL, for replay
    clean: Path  # the same session with harmless text
    events: list[dict[str, Any]]


def governed(path: Path, goal: str) -> list[dict[str, Any]]:
    with cra.Runtime(trace_file=path, atlases=[EXAMPLE_ATLAS]) as rt:
        sid = rt.create_session(agent_id=AGENT, goal=goal)
        rt.resolve(CARPRequest.resolve(sid, AGENT, goal, risk_tier="medium"))
        rt.record(sid, "x.note", {"text": goal, goal: 1})
        rt.end_session(sid, "completed")
        rt.flush()
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def evil(tmp_path_factory: pytest.TempPathFactory) -> Evil:
    d = tmp_path_factory.mktemp("evil")
    events = governed(d / "evil.trace.jsonl", EVIL)
    assert cra.verify_jsonl(d / "evil.trace.jsonl").valid
    forged = crafted(session_id=EVIL, event_type=EVIL, timestamp=f"2026-01-01T{EVIL}")
    replayable = [dict(e, payload=dict(e["payload"])) for e in events]
    for e in replayable:
        if e["event_type"] == "carp.request.received":
            e["payload"].update(request_id=EVIL, atlas_ids=[EVIL])
    return Evil(
        trace=d / "evil.trace.jsonl",
        crafted=write_trace(d / "crafted.trace.jsonl", [*events, forged]),
        replayable=write_trace(d / "replayable.trace.jsonl", replayable),
        clean=write_trace(d / "clean.trace.jsonl", governed(d / "clean0.jsonl", "a goal")),
        events=events,
    )


# -- 1. control characters are shown as escapes -----------------------------------------------


def test_show_prints_control_characters_as_escapes(evil: Evil) -> None:
    p = run_cli("trace", "show", "--no-color", evil.crafted)
    assert p.returncode == 0, p.stderr
    assert_terminal_safe(p.stdout + p.stderr)
    lines = p.stdout.splitlines()
    assert len(lines) == len(evil.events) + 1  # no line forged, none cleared
    assert f"goal={SHOWN}" in lines[0]
    assert f"text={SHOWN}" in p.stdout and f"{SHOWN}=1" in p.stdout
    assert f" {SHOWN}" in lines[-1]  # the crafted event type


def test_show_in_colour_sends_only_its_own_escapes(
    evil: Evil, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from cra.cli import main

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert main(["trace", "show", str(evil.crafted)]) == 0
    out = capsys.readouterr().out
    colours = re.findall(r"\x1b\[[0-9;]*m", out)
    assert colours, "no colours: the test does not test what it means to"
    assert_terminal_safe(re.sub(r"\x1b\[(?:[0-9];)?[0-9]{1,2}m", "", out))
    assert SHOWN in out


def test_show_of_a_lone_surrogate_escapes_it(tmp_path: Path) -> None:
    path = tmp_path / "surrogate.trace.jsonl"
    path.write_text(json.dumps(crafted(payload={"text": "a\ud800b"})) + "\n", encoding="utf-8")
    p = run_cli("trace", "show", "--no-color", path)
    assert p.returncode == 0, p.stderr
    assert "text=a\\ud800b" in p.stdout


def test_verify_escapes_session_ids_and_file_names(evil: Evil, tmp_path: Path) -> None:
    p = run_cli("trace", "verify", evil.crafted)
    assert p.returncode == 1
    assert_terminal_safe(p.stdout + p.stderr)
    assert f"FAIL  {SHOWN}  " in p.stdout

    named = tmp_path / f"x{EVIL}.trace.jsonl"
    named.write_bytes(evil.trace.read_bytes())
    p = run_cli("trace", "verify", named)
    assert p.returncode == 0, p.stdout + p.stderr
    assert_terminal_safe(p.stdout + p.stderr)
    assert f"x{SHOWN}.trace.jsonl: VALID" in p.stdout

    p = run_cli("trace", "verify", tmp_path / f"missing{EVIL}.jsonl")
    assert p.returncode == 2
    assert_terminal_safe(p.stdout + p.stderr)
    assert f"missing{SHOWN}.jsonl" in p.stderr


def test_verify_escapes_what_a_bad_line_quotes(tmp_path: Path) -> None:
    path = tmp_path / "quoted.trace.jsonl"
    path.write_text(
        json.dumps(crafted(trace_version=EVIL)) + "\n" + json.dumps(EVIL) + "\n", encoding="utf-8"
    )
    p = run_cli("trace", "verify", path)
    assert p.returncode == 1
    assert_terminal_safe(p.stdout + p.stderr)


def test_diff_escapes_paths_and_values(evil: Evil) -> None:
    p = run_cli("trace", "diff", evil.trace, evil.clean)
    assert p.returncode == 1
    assert_terminal_safe(p.stdout + p.stderr)
    assert f"/payload/{SHOWN}: 1 -> null" in p.stdout


def test_replay_escapes_request_ids_and_errors(evil: Evil) -> None:
    p = run_cli("trace", "replay", "--atlas", EXAMPLE_ATLAS, evil.replayable)
    assert p.returncode == 1
    assert_terminal_safe(p.stdout + p.stderr)
    assert f"DIFF request {SHOWN} (session " in p.stdout
    assert f"atlas {SHOWN} is not loaded" in p.stdout


def test_show_of_a_missing_file_escapes_its_name(tmp_path: Path) -> None:
    p = run_cli("trace", "show", tmp_path / f"gone{EVIL}.jsonl")
    assert p.returncode == 2
    assert_terminal_safe(p.stdout + p.stderr)
    assert f"gone{SHOWN}.jsonl" in p.stderr


@pytest.mark.parametrize("command", ["verify", "diff", "replay"])
def test_json_reports_are_ascii(evil: Evil, command: str) -> None:
    """`--json` escapes every control and non-ASCII character itself (`ensure_ascii`)."""
    args = {
        "verify": [evil.crafted],
        "diff": [evil.trace, evil.clean],
        "replay": ["--atlas", EXAMPLE_ATLAS, evil.replayable],
    }[command]
    p = run_cli("trace", command, "--json", *args)
    assert p.returncode == 1, p.stderr
    assert all(" " <= c <= "~" or c == "\n" for c in p.stdout), p.stdout
    assert any(EVIL in s for s in strings(json.loads(p.stdout)))  # escaped, not lost


def test_export_to_standard_output_escapes_raw_characters(tmp_path: Path) -> None:
    """A store whose texts hold raw C1, DEL and bidi characters (valid JSON:
    only C0 must be escaped inside strings) is exported with them escaped,
    to the same JSON values."""
    store = JSONLStore(tmp_path / "store")
    raw = "\x9b\x7f\u202e\u2066"  # not U+2028: the store's own reader splits lines there
    with cra.Runtime(sinks=[store]) as rt:
        sid = rt.create_session(agent_id="a", goal=f"goal {raw}")
        rt.flush()
    store.close()
    file = store.path_of(sid)
    text = file.read_text(encoding="utf-8")
    for c in raw:
        text = text.replace(f"\\u{ord(c):04x}", c)
    assert raw in text
    file.write_text(text, encoding="utf-8")

    p = run_cli("trace", "export", "--store", tmp_path / "store", "--session", sid)
    assert p.returncode == 0, p.stderr
    assert_terminal_safe(p.stdout + p.stderr)
    exported = [json.loads(line) for line in p.stdout.splitlines()]
    assert exported == [json.loads(line) for line in text.splitlines()]
    assert exported[0]["payload"]["goal"] == f"goal {raw}"


def test_atlas_validate_escapes_what_the_atlas_says(tmp_path: Path) -> None:
    path = tmp_path / "atlas.json"
    path.write_text(json.dumps({"atlas_id": EVIL, "version": EVIL, "actions": EVIL}))
    p = run_cli("atlas", "validate", path)
    assert p.returncode == 1
    assert_terminal_safe(p.stdout + p.stderr)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("plain text, é and ünïcode — kept", "plain text, é and ünïcode — kept"),
        ("\x1b[31mred", "\\x1b[31mred"),
        ("a\rb\nc\td\x00", "a\\rb\\nc\\td\\x00"),
        ("\x7f\x80\x9b\x9f\xa0", "\\x7f\\x80\\x9b\\x9f\xa0"),
        ("\u202a\u202b\u202c\u202d\u202e", "\\u202a\\u202b\\u202c\\u202d\\u202e"),
        ("\u2066\u2067\u2068\u2069", "\\u2066\\u2067\\u2068\\u2069"),
        ("\u200e\u200f\u061c\u2028\u2029", "\\u200e\\u200f\\u061c\\u2028\\u2029"),
        ("\ud800", "\\ud800"),
        ("C:\\path", "C:\\path"),
    ],
)
def test_escape(text: str, shown: str) -> None:
    from cra.cli.safe import escape

    assert escape(text) == shown
    assert_terminal_safe(escape(text))


def test_json_text_keeps_the_value_and_escapes_the_rest() -> None:
    from cra.cli.safe import json_text

    value = {"a": "\x9b\x7f\u202e\u2028 é\n\x1b", "b": [1, 2.5, None]}
    for text in (
        json.dumps(value, ensure_ascii=False),
        json.dumps(value, ensure_ascii=False, indent="\t"),
        json.dumps(value, ensure_ascii=False).replace(", ", ",\r "),
    ):
        shown = json_text(text)
        assert_terminal_safe(shown)
        assert json.loads(shown) == value
    assert json_text('{"a": 1}') == '{"a": 1}'


def test_no_command_prints_past_the_escaping() -> None:
    """Every line the CLI prints goes through `cra.cli.safe`: no module but
    it calls `print` or writes to `sys.stdout`/`sys.stderr` (`serve` prints
    only its own configuration errors, and is the server's)."""
    found = []
    for path in sorted(CLI.glob("*.py")):
        if path.name in ("safe.py", "serve.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Name) and node.id == "print":
                found.append(f"{path.name}:{node.lineno}: print")
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Attribute)
                and isinstance(node.value.value, ast.Name)
                and node.value.value.id == "sys"
                and node.value.attr in ("stdout", "stderr")
                and node.attr not in ("isatty", "flush")
            ):
                found.append(f"{path.name}:{node.lineno}: sys.{node.value.attr}.{node.attr}")
    assert not found, found


# -- 2. a line that is not an event ---------------------------------------------------------


BAD_LINES = {
    "not_json": b"not json {",
    "array": b"[1, 2]",
    "number": b"42",
    "string": b'"\\u001b[2J"',
    "null": b"null",
    "no_fields": b'{"event_type": "x.note"}',
    "not_utf8": b'{"a": "\xff\xfe"}',
    "deep": b"[" * 100_000 + b"]" * 100_000,
    "huge_number": b'{"sequence": 1' + b"0" * 5000 + b"}",
}


@pytest.fixture(scope="module")
def lines(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    """Five events of one session, as lines."""
    d = tmp_path_factory.mktemp("lines")
    events = governed(d / "t.trace.jsonl", "a goal")
    return [json.dumps(e).encode() + b"\n" for e in events[:5]]


def bad_file(directory: Path, lines: list[bytes], bad: bytes) -> Path:
    """Two events, an empty line, the bad line (line 4), then two more events."""
    path = directory / "bad.trace.jsonl"
    path.write_bytes(b"".join([*lines[:2], b"\n", bad + b"\n", *lines[3:]]))
    return path


@pytest.mark.parametrize("kind", sorted(BAD_LINES))
def test_show_names_a_bad_line_by_file_and_number(
    lines: list[bytes], tmp_path: Path, kind: str
) -> None:
    path = bad_file(tmp_path, lines, BAD_LINES[kind])
    p = run_cli("trace", "show", "--no-color", path)
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr
    assert p.stderr.startswith(f"error: TRACE_INVALID: {path}: line 4: "), p.stderr
    assert len(p.stderr.splitlines()) == 1
    assert len(p.stdout.splitlines()) == 2  # the events before it
    assert_terminal_safe(p.stdout + p.stderr)


@pytest.mark.parametrize("kind", sorted(BAD_LINES))
@pytest.mark.parametrize("side", ["a", "b"])
def test_diff_names_a_bad_line_by_file_and_number(
    lines: list[bytes], tmp_path: Path, kind: str, side: str
) -> None:
    path = bad_file(tmp_path, lines, BAD_LINES[kind])
    other = tmp_path / "good.trace.jsonl"
    other.write_bytes(b"".join(lines))
    a, b = (path, other) if side == "a" else (other, path)
    p = run_cli("trace", "diff", a, b)
    assert p.returncode == 2, p.stdout + p.stderr
    assert "Traceback" not in p.stderr
    assert p.stderr.startswith(f"error: TRACE_INVALID: {path}: line 4: "), p.stderr
    assert_terminal_safe(p.stdout + p.stderr)


@pytest.mark.parametrize("kind", sorted(BAD_LINES))
def test_replay_names_a_bad_line_by_file_and_number(
    lines: list[bytes], tmp_path: Path, kind: str
) -> None:
    path = bad_file(tmp_path, lines, BAD_LINES[kind])
    p = run_cli("trace", "replay", "--atlas", EXAMPLE_ATLAS, path)
    assert p.returncode == 2, p.stdout + p.stderr
    assert "Traceback" not in p.stderr
    assert p.stderr.startswith(f"error: TRACE_INVALID: {path}: line 4: "), p.stderr
    assert_terminal_safe(p.stdout + p.stderr)


@pytest.mark.parametrize("kind", sorted(BAD_LINES))
def test_verify_reports_a_bad_line_as_a_failed_check(
    lines: list[bytes], tmp_path: Path, kind: str
) -> None:
    path = bad_file(tmp_path, lines, BAD_LINES[kind])
    p = run_cli("trace", "verify", path)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "Traceback" not in p.stderr
    assert "  FAIL  line 4: not a TRACE event: " in p.stdout
    assert_terminal_safe(p.stdout + p.stderr)


@pytest.mark.parametrize("command", ["show", "diff", "replay", "verify"])
def test_a_torn_last_line_is_named_by_every_command(
    lines: list[bytes], tmp_path: Path, command: str
) -> None:
    path = tmp_path / "torn.trace.jsonl"
    path.write_bytes(b"".join(lines) + b'{"trace_version": "1.0", "ev')
    args = {
        "show": [path],
        "diff": [path, path],
        "replay": ["--atlas", EXAMPLE_ATLAS, path],
        "verify": [path],
    }[command]
    p = run_cli("trace", command, *args)
    assert "Traceback" not in p.stderr
    if command == "verify":
        assert p.returncode == 1
        assert "FAIL  torn last line 6 " in p.stdout
    else:
        assert p.returncode == 2
        assert p.stderr == (
            f"error: TRACE_TORN: {path} ends in a torn line; "
            f"run `cra trace verify` on it first (at {path})\n"
        )


def test_show_accepts_a_payload_that_is_not_an_object(tmp_path: Path) -> None:
    path = tmp_path / "odd.trace.jsonl"
    path.write_text(json.dumps(crafted(payload=[EVIL, 1])) + "\n", encoding="utf-8")
    p = run_cli("trace", "show", "--no-color", path)
    assert p.returncode == 0, p.stderr
    assert '["\\u001b[2J' in p.stdout
    assert_terminal_safe(p.stdout)


@pytest.mark.parametrize(
    "store", [b"not a database, not at all" * 100, b"SQLite format 3\x00" + b"\x00" * 200]
)
def test_export_from_a_file_that_is_not_a_store_exits_2(tmp_path: Path, store: bytes) -> None:
    path = tmp_path / "store.db"
    path.write_bytes(store)
    p = run_cli("trace", "export", "--store", path, "--session", "s")
    assert p.returncode == 2, p.stdout + p.stderr
    assert "Traceback" not in p.stderr
    assert p.stderr.startswith(f"error: cannot read the store {path}: ")


# -- 3. a reader that closes the pipe early ------------------------------------------------


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, str, Path]]:
    """A trace and a store whose output (some 400 KiB) overfills a pipe,
    and a small trace that `verify` reports in two lines (given 1000 times)."""
    d = tmp_path_factory.mktemp("big")
    with cra.Runtime(trace_file=d / "small.trace.jsonl") as rt:
        rt.create_session(agent_id="a", goal="g")
    store = JSONLStore(d / "store")
    with cra.Runtime(trace_file=d / "big.trace.jsonl", sinks=[store]) as rt:
        sid = rt.create_session(agent_id="a", goal="g")
        for i in range(4000):
            rt.record(sid, "x.tick", {"i": i, "text": "padding " * 6})
        rt.end_session(sid, "completed")
        rt.flush()
    store.close()
    yield d / "big.trace.jsonl", d / "store", sid, d / "small.trace.jsonl"


@pytest.mark.parametrize("command", ["show", "export", "verify"])
def test_a_reader_that_stops_early_ends_the_command_quietly(
    big: tuple[Path, Path, str, Path], command: str
) -> None:
    trace, store, sid, small = big
    args = {
        "show": ["show", "--no-color", str(trace)],
        "export": ["export", "--store", str(store), "--session", sid],
        "verify": ["verify", *[str(small)] * 1000],
    }[command]
    with subprocess.Popen(
        [sys.executable, "-m", "cra", "trace", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        first = proc.stdout.readline()
        proc.stdout.close()
        stderr = proc.stderr.read().decode("utf-8", "replace")
        status = proc.wait(timeout=120)
    assert first.strip(), stderr
    assert stderr == "", stderr
    assert status == 141
