"""What the storage benches (bench_store_ingest, bench_store_end_to_end,
bench_replay, bench_record_while_ingesting) share: the stores measured
(cra.storage, or another version of it named by CRA_BENCH_STORAGE), the
batch size and rounds, and small helpers. Not collected itself (pytest
collects bench_*.py only)."""

from __future__ import annotations

import importlib.util
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import cra
import cra.storage
from conftest import QUICK, flush_thread_ids, thread_cpu_ns


def _storage_module() -> Any:
    """cra.storage, or the file named by CRA_BENCH_STORAGE loaded in its
    place (to compare two versions of the stores against the same core,
    e.g. `git show 17021db:python/cra/storage.py > /tmp/storage_old.py`,
    the single-file module from before `cra.storage` became a package)."""
    alt = os.environ.get("CRA_BENCH_STORAGE")
    if not alt:
        return cra.storage
    spec = importlib.util.spec_from_file_location("cra._bench_storage", alt)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


STORAGE = _storage_module()
SQLiteStore = STORAGE.SQLiteStore
JSONLStore = STORAGE.JSONLStore
#: Appended to every section name when another storage module is measured.
TAG = f" [storage: {os.environ['CRA_BENCH_STORAGE']}]" if "CRA_BENCH_STORAGE" in os.environ else ""

#: Events per write_batch call: the flush thread's largest batch.
BATCH = 4096
#: Rounds of each measurement; medians over rounds are reported.
ROUNDS = 1 if QUICK else 3

SQLITE_GOAL = ">= 200,000"
AGENT = "bench-agent"


def flush_thread_of(make: Callable[[], cra.Runtime]) -> tuple[cra.Runtime, int | None]:
    """A runtime from `make()` and the id of its flush thread (Linux; None
    when it cannot be told apart)."""
    before = set(flush_thread_ids())
    rt = make()
    deadline = time.monotonic() + 2.0
    new: list[int] = []
    while time.monotonic() < deadline:  # the thread names itself when it first runs
        new = sorted(set(flush_thread_ids()) - before)
        if new:
            break
        time.sleep(0.001)
    return rt, new[0] if len(new) == 1 else None


def cpu_delta(tid: int | None, cpu0: int | None) -> int | None:
    cpu1 = thread_cpu_ns(tid)
    return cpu1 - cpu0 if cpu0 is not None and cpu1 is not None else None


def median(values: Sequence[float]) -> float:
    return statistics.median(values)
