"""`cra trace replay|diff|show|export` (issue 5), run as `python -m cra`:
exit 0 when the trace reproduces or the traces are equivalent, 1 when they
diverge, 2 when a file cannot be read; `--json` reports; a readable timeline;
a stored session exported as a file that verifies."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cra
import pytest
from audit_helpers import (
    GOVERNED_OUTCOMES,
    as_dicts,
    governed_session,
    run_cli,
    stricter_atlas,
    tear,
    write_atlas,
    write_trace,
)
from cra.storage import JSONLStore, SQLiteStore
from execute_helpers import Harness, ops_atlas
from resolve_helpers import action, make_atlas, policy


@dataclass
class Files:
    atlas: Path
    stricter: Path
    trace: Path
    rerun: Path
    divergent: Path
    torn: Path
    events: list[dict]  # type: ignore[type-arg]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Files]:
    d = tmp_path_factory.mktemp("cli")
    traces = []
    for atlas in (ops_atlas(), ops_atlas(), stricter_atlas()):
        with Harness(atlas) as h:
            run = governed_session(h)
            traces.append(as_dicts(run.events))
    assert run.outcomes == GOVERNED_OUTCOMES
    trace = write_trace(d / "run.trace.jsonl", traces[0])
    torn = write_trace(d / "torn.trace.jsonl", traces[0])
    tear(torn)
    yield Files(
        atlas=write_atlas(d / "ops.json", ops_atlas()),
        stricter=write_atlas(d / "stricter.json", stricter_atlas()),
        trace=trace,
        rerun=write_trace(d / "rerun.trace.jsonl", traces[1]),
        divergent=write_trace(d / "divergent.trace.jsonl", traces[2]),
        torn=torn,
        events=traces[0],
    )


# -- replay ---------------------------------------------------------------------------------


def test_replay_identical_exits_0(files: Files) -> None:
    p = run_cli("trace", "replay", "--atlas", files.atlas, files.trace)
    assert p.returncode == 0, p.stderr
    assert "replay: IDENTICAL — 4 of 4 requests match" in p.stdout
    assert "5 recorded executions counted" in p.stdout
    assert p.stdout.count("  ok   request ") == 4


def test_replay_divergent_exits_1_and_names_the_fields(files: Files) -> None:
    p = run_cli("trace", "replay", "--atlas", files.stricter, files.trace)
    assert p.returncode == 1, p.stderr
    assert "replay: DIVERGENT — 0 of 4 requests match" in p.stdout
    assert p.stdout.count("  DIFF request ") == 4
    assert re.search(r"allowed_count: recorded \d+, replayed \d+", p.stdout)
    assert re.search(
        r'policy\.evaluated/\d+: recorded \{"action_id": "api\.echo", "policy_id": "allow-ops", '
        r'"result": "allow"\}, replayed \{"action_id": "api\.echo", "policy_id": "no-echo", '
        r'"result": "deny"\}',
        p.stdout,
    )


def test_replay_json(files: Files) -> None:
    p = run_cli("trace", "replay", "--json", "--atlas", files.atlas, files.trace)
    assert p.returncode == 0, p.stderr
    report = json.loads(p.stdout)
    assert report["identical"] is True
    assert (report["matched"], report["mismatched"], report["executions_counted"]) == (4, 0, 5)
    assert [r["request_id"] for r in report["requests"]] == [
        e["payload"]["request_id"]
        for e in files.events
        if e["event_type"] == "carp.request.received" and e["payload"]["operation"] == "resolve"
    ]
    assert set(report["requests"][0]) == {
        "session_id",
        "request_id",
        "sequence",
        "matches",
        "mismatches",
        "error",
    }

    p = run_cli("trace", "replay", "--json", "--atlas", files.stricter, files.trace)
    assert p.returncode == 1
    report = json.loads(p.stdout)
    assert report["identical"] is False
    assert report["mismatched"] == 4
    fields = {m["field"] for m in report["requests"][0]["mismatches"]}
    assert {"allowed_count", "denied_count"} <= fields


def test_replay_against_two_atlas_files(files: Files, tmp_path: Path) -> None:
    manifest = make_atlas(
        "org.test.extra",
        actions=[action("extra.thing")],
        policies=[policy("allow-extra", "allow", ["extra.*"])],
    )
    extra = write_atlas(tmp_path / "extra.json", manifest)
    p = run_cli("trace", "replay", "--atlas", files.atlas, "--atlas", extra, files.trace)
    assert p.returncode == 0, p.stdout + p.stderr


@pytest.mark.parametrize("which", ["missing", "torn"])
def test_replay_of_an_unreadable_file_exits_2(files: Files, tmp_path: Path, which: str) -> None:
    path = tmp_path / "nowhere.trace.jsonl" if which == "missing" else files.torn
    p = run_cli("trace", "replay", "--atlas", files.atlas, path)
    assert p.returncode == 2
    assert p.stderr.startswith("error:")
    assert "Traceback" not in p.stderr


def test_replay_with_a_missing_atlas_exits_2(files: Files, tmp_path: Path) -> None:
    p = run_cli("trace", "replay", "--atlas", tmp_path / "none.json", files.trace)
    assert p.returncode == 2
    assert "Traceback" not in p.stderr


# -- diff -----------------------------------------------------------------------------------


def test_diff_of_two_runs_exits_0(files: Files) -> None:
    p = run_cli("trace", "diff", "--json", files.trace, files.rerun)
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert d["compatibility"] in ("identical", "semantically_equivalent")
    assert all(x["significance"] == "minor" for x in d["differences"])
    assert all(set(x) == {"path", "type", "significance"} for x in d["differences"])


def test_diff_of_a_file_with_itself_is_identical(files: Files) -> None:
    p = run_cli("trace", "diff", files.trace, files.trace)
    assert p.returncode == 0
    assert p.stdout.strip() == "diff: identical (0 difference(s))"


def test_diff_of_only_timings_is_semantically_equivalent(files: Files, tmp_path: Path) -> None:
    slower = [dict(e, payload=dict(e["payload"])) for e in files.events]
    for e in slower:
        if "duration_ms" in e["payload"]:
            e["payload"]["duration_ms"] = 99.5
    other = write_trace(tmp_path / "slower.trace.jsonl", slower)
    p = run_cli("trace", "diff", files.trace, other)
    assert p.returncode == 0
    assert "diff: semantically_equivalent" in p.stdout
    assert re.search(r"minor value_changed +/\d+/payload/duration_ms: [0-9.e-]+ -> 99\.5", p.stdout)


def test_diff_divergent_exits_1(files: Files) -> None:
    p = run_cli("trace", "diff", files.trace, files.divergent)
    assert p.returncode == 1
    assert "diff: divergent" in p.stdout
    assert re.search(r'major value_changed +/\d+/payload/result: "allow" -> "deny"', p.stdout)

    p = run_cli("trace", "diff", "--json", files.trace, files.divergent)
    assert p.returncode == 1
    d = json.loads(p.stdout)
    assert d["compatibility"] == "divergent"
    assert any(
        x["significance"] == "major" and x["path"].endswith("/payload/policy_id")
        for x in d["differences"]
    )


def test_diff_of_a_missing_file_exits_2(files: Files, tmp_path: Path) -> None:
    p = run_cli("trace", "diff", files.trace, tmp_path / "nowhere.trace.jsonl")
    assert p.returncode == 2
    assert "Traceback" not in p.stderr


# -- show -----------------------------------------------------------------------------------


def test_show_prints_one_line_per_event(files: Files) -> None:
    p = run_cli("trace", "show", files.trace, "--no-color")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert len(lines) == len(files.events)
    assert "\033[" not in p.stdout
    for line, e in zip(lines, files.events):
        assert re.search(rf"#{e['sequence']}\s", line), line
        assert f" {e['event_type']} " in f"{line} ", line
    assert "agent_id=agent-1" in lines[0]
    denied = [line for line in lines if " action.denied " in line]
    assert any("action_id=api.call" in line for line in denied)
    assert any("approver=alice" in line for line in lines)


def test_show_of_a_torn_file_exits_2(files: Files) -> None:
    p = run_cli("trace", "show", files.torn, "--no-color")
    assert p.returncode == 2
    assert "TRACE_TORN" in p.stderr


# -- export ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, str, str]]:
    d = tmp_path_factory.mktemp("stores")
    sqlite, jsonl = SQLiteStore(d / "store.db"), JSONLStore(d / "traces")
    with Harness(sinks=[sqlite, jsonl]) as h:
        run = governed_session(h)
        other = h.session("agent-2")
        h.rt.record(other, "x.note", {"text": "hello"})
        h.rt.flush()
        assert run.outcomes == GOVERNED_OUTCOMES
    sqlite.close()
    jsonl.close()
    yield d / "store.db", d / "traces", h.sid, other


@pytest.mark.parametrize("kind", ["sqlite", "jsonl"])
def test_export_writes_a_file_that_verifies(
    stored: tuple[Path, Path, str, str], tmp_path: Path, kind: str
) -> None:
    db, directory, sid, other = stored
    out = tmp_path / "out.trace.jsonl"
    p = run_cli(
        "trace",
        "export",
        "--store",
        db if kind == "sqlite" else directory,
        "--session",
        sid,
        "--out",
        out,
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout == ""
    report = cra.verify_jsonl(out)
    assert report.valid
    assert list(report) == [sid]
    exported = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert exported[0]["event_type"] == "session.started"
    assert exported[-1]["event_type"] == "session.ended"
    assert other not in out.read_text(encoding="utf-8")
    assert cra.replay(out, [ops_atlas()]).identical


def test_export_to_standard_output(stored: tuple[Path, Path, str, str]) -> None:
    db, _, _, other = stored
    p = run_cli("trace", "export", "--store", db, "--session", other)
    assert p.returncode == 0, p.stderr
    events = [json.loads(line) for line in p.stdout.splitlines()]
    assert [e["event_type"] for e in events] == ["session.started", "x.note"]
    assert cra.verify_chain(events).valid


def test_export_of_an_unknown_session_exits_2(stored: tuple[Path, Path, str, str]) -> None:
    db, _, _, _ = stored
    p = run_cli(
        "trace", "export", "--store", db, "--session", "0193a0b0-0000-7000-8000-000000000505"
    )
    assert p.returncode == 2
    assert "no events for session" in p.stderr
