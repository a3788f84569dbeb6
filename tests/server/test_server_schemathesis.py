"""A bounded schemathesis run against the HTTP server finds no 5xx and no
schema violation.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from server_helpers import (
    KEY_A,
    OPENAPI,
    LiveServer,
)


def test_schemathesis_finds_no_5xx_and_no_schema_violation(tmp_path: Path) -> None:
    st = Path(sys.executable).parent / "st"
    if not st.exists():
        pytest.skip("schemathesis is not installed")
    # An admin key: every operation is open to it, so the generated requests
    # reach the bodies' checks rather than stopping at a 403.
    server = LiveServer(tmp_path, keys=f"ops:admin:{KEY_A}")
    try:
        cmd = [
            str(st),
            "run",
            str(OPENAPI),
            "--url",
            server.url,
            "-H",
            f"X-API-Key: {KEY_A}",
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,"
            "response_headers_conformance,response_schema_conformance",
            "--max-examples",
            "25",
            "--seed",
            "6",
            # One worker: schemathesis (through hypothesis) calls ast.parse,
            # and on CPython 3.11 two threads doing that at once can fail
            # with "AST constructor recursion depth mismatch" (a crash of
            # the tool, seen once in a fresh-clone run; not a finding).
            "--workers",
            "1",
            "--request-timeout",
            "20",
            "--phases",
            "examples,coverage,fuzzing",
            "--suppress-health-check",
            "all",
        ]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    finally:
        code = server.stop()
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-2000:]
    assert "Exception in ASGI application" not in server.log()
    assert code in (0, -signal.SIGTERM)
