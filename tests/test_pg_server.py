"""The PostgreSQL test server (pg_server.PgServer) and its fixtures."""

from __future__ import annotations

import re
import subprocess

import pytest
from pg_server import PgServer, PgServerError, find_pg_bin, pg_unavailable_reason, unavailable

DSN_RE = re.compile(r"postgresql://postgres@127\.0\.0\.1:(\d+)/(\w+)")


def test_the_server_answers_on_its_dsn(pg_server: PgServer) -> None:
    m = DSN_RE.fullmatch(pg_server.dsn)
    assert m and m.group(1) == str(pg_server.port) and m.group(2) == "cra"
    assert pg_server.psql("select 1").strip() == "1"
    assert pg_server.psql("select current_database(), current_user").strip() == "cra|postgres"


def test_the_psql_binary_works_on_the_dsn(pg_server: PgServer) -> None:
    """The DSN is all a client needs (TCP, trust, no password)."""
    psql = pg_server.bin_dir / "psql"
    r = subprocess.run(
        [str(psql), "-X", "-A", "-t", "-d", pg_server.dsn, "-c", "select 40 + 2"],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "42"


def test_new_databases_are_distinct_and_isolated(pg_server: PgServer) -> None:
    one = pg_server.new_database("harness_one")
    two = pg_server.new_database("harness_two")
    assert one != two
    assert one.endswith("/harness_one") and two.endswith("/harness_two")
    pg_server.psql("create table t (x int); insert into t values (1)", one)
    assert pg_server.psql("select current_database(), count(*) from t", one).strip() == (
        "harness_one|1"
    )
    assert pg_server.psql("select current_database()", two).strip() == "harness_two"
    assert pg_server.psql("select to_regclass('t') is null", two).strip() == "t"
    with pytest.raises(PgServerError, match="already exists"):
        pg_server.new_database("harness_one")


def test_new_database_takes_plain_names_only(pg_server: PgServer) -> None:
    with pytest.raises(ValueError):
        pg_server.new_database("x; drop database cra")


def test_pg_dsn_is_a_fresh_database_per_test(pg_server: PgServer, pg_dsn: str) -> None:
    m = DSN_RE.fullmatch(pg_dsn)
    assert m and m.group(1) == str(pg_server.port) and re.fullmatch(r"t\d+", m.group(2))
    assert pg_server.psql("select current_database()", pg_dsn).strip() == m.group(2)
    assert (
        pg_server.psql("select count(*) from pg_tables where schemaname = 'public'", pg_dsn).strip()
        == "0"
    )
    pg_server.psql("create table mine (x int)", pg_dsn)


def test_pg_dsn_again_is_another_database(pg_server: PgServer, pg_dsn: str) -> None:
    assert pg_server.psql("select to_regclass('mine') is null", pg_dsn).strip() == "t"


def test_a_second_server_and_stop_removes_everything() -> None:
    """A server of its own (the context manager): stop() ends the server
    and removes its directory."""
    reason = pg_unavailable_reason()
    if reason is not None:
        unavailable(reason)
    with PgServer() as server:
        root, dsn, data = server.root, server.dsn, server.data_dir
        assert root is not None and root.is_dir()
        assert (data / "postmaster.pid").exists()
        assert server.psql("select 1").strip() == "1"
    assert not root.exists()
    assert server.root is None
    psql = find_pg_bin() / "psql"  # type: ignore[operator]
    r = subprocess.run(
        [str(psql), "-X", "-d", dsn, "-c", "select 1"],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        env={"PGCONNECT_TIMEOUT": "5", "PATH": "/usr/bin:/bin"},
    )
    assert r.returncode != 0


def test_find_pg_bin_gives_a_directory_with_the_tools() -> None:
    bin_dir = find_pg_bin()
    if bin_dir is None:
        assert pg_unavailable_reason() is not None
        return
    assert (bin_dir / "initdb").exists() and (bin_dir / "pg_ctl").exists()
