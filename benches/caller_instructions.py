"""Instructions per `rt.resolve(dict)` / `rt.execute(dict)` on the caller's
thread, counted by callgrind (repeatable where wall-clock time is not: the
flush thread and the rest of the machine do not change the count).

Run: `.venv/bin/python benches/caller_instructions.py [resolve|execute]`
(needs valgrind). It runs the worked example twice under callgrind with
`--separate-threads=yes`, once with SHORT and once with LONG timed calls
after the same warm-up, and divides the main thread's difference by
LONG - SHORT, so start-up cancels out; the process leaves without
tearing the runtime down (freeing the events and resolutions it kept grows
with the number of calls but is no part of one). valgrind runs SHA-256
in software, so hashing on the caller's thread counts more than on the
hardware.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

SHORT, LONG, WARMUP = 500, 2_500, 500


def _loop(kind: str, n: int) -> None:
    """The measured process: WARMUP untimed calls, a flush, n more calls."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import cra
    from resolve_fixtures import AGENT, GOAL, WORKED_ATLAS, new_ids

    # As many requests in both runs, so that making them cancels out too.
    ids = new_ids(WARMUP + LONG)
    if kind == "resolve":
        rt = cra.Runtime(atlases=[WORKED_ATLAS], memory_limit=100_000)
        sid = rt.create_session(agent_id=AGENT, goal="instructions")
        reqs = [
            cra.CARPRequest.resolve(sid, AGENT, GOAL, request_id=i, timestamp=rt.timestamp())
            for i in ids
        ]
        call = rt.resolve
    else:
        from bench_execute import _execute_setup

        rt, _, req = _execute_setup(200_000)
        reqs = [{**req, "request_id": i} for i in ids]
        call = rt.execute
    for q in reqs[:WARMUP]:
        call(q)
    rt.flush()
    for q in reqs[WARMUP : WARMUP + n]:
        call(q)
    rt.flush()
    # Leave without tearing down: freeing what the runtime kept (events,
    # resolutions) grows with n but is not part of a call.
    sys.stdout.flush()
    os._exit(0)


def _main_thread_total(kind: str, n: int, out: Path) -> int:
    subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--separate-threads=yes",
            f"--callgrind-out-file={out}",
            sys.executable,
            __file__,
            "--loop",
            kind,
            str(n),
        ],
        check=True,
        capture_output=True,
        # One string-hash seed, so that dict layouts (and the instructions
        # spent probing them) are the same in every run.
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    for line in Path(f"{out}-01").read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise RuntimeError("callgrind wrote no totals for the main thread")


def main() -> None:
    kind = sys.argv[1] if len(sys.argv) > 1 else "resolve"
    with tempfile.TemporaryDirectory() as tmp:
        short = _main_thread_total(kind, SHORT, Path(tmp) / "short")
        long = _main_thread_total(kind, LONG, Path(tmp) / "long")
    print(f"rt.{kind}(dict): {(long - short) // (LONG - SHORT):,} instructions per call")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--loop"]:
        _loop(sys.argv[2], int(sys.argv[3]))
    else:
        main()
