"""A throwaway PostgreSQL server for the test suite (not a test module).

`PgServer` runs `initdb` into a fresh directory under /tmp, starts the server
on a free TCP port of 127.0.0.1 (and a unix socket in that directory), and
creates a database named `cra`; `stop()` shuts it down and removes the
directory. Authentication is `trust`, the superuser is `postgres`, fsync is
off: a server for tests only.

initdb and pg_ctl refuse to run as root, so when the tests run as root the
server's commands run as the `postgres` system user (which Debian's
postgresql package creates) through `runuser` (or `su`).

There is no Python PostgreSQL driver in the test environment: `psql()` runs
the `psql` binary of the same installation against a DSN.
"""

from __future__ import annotations

import atexit
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType
from typing import NoReturn, Optional, Sequence

import pytest

PG_USER = "postgres"  # the server's superuser and, when running as root, the OS user
DB_NAME = "cra"
_DB_NAME_RE = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_LOG_TAIL_LINES = 30


class PgServerError(RuntimeError):
    """The server could not be set up, started or used (the message carries
    the command's output and the tail of the server log)."""


def _has_tools(d: Path) -> bool:
    return all(os.access(d / tool, os.X_OK) for tool in ("initdb", "pg_ctl"))


def find_pg_bin() -> Optional[Path]:
    """The directory holding `initdb` and `pg_ctl`: the one of PATH's `initdb`
    first, then the highest version under /usr/lib/postgresql/*/bin; None if
    there is neither.

    A PATH `initdb` that is a symlink (e.g. /usr/local/bin/initdb ->
    /usr/lib/postgresql/15/bin/initdb) gives the directory it points into,
    where psql and createdb of the same version live too."""
    on_path = shutil.which("initdb")
    if on_path:
        real = Path(os.path.realpath(on_path)).parent
        if _has_tools(real):
            return real
        plain = Path(on_path).parent
        if _has_tools(plain):
            return plain

    def version(d: Path) -> tuple[int, ...]:
        name = d.parent.name
        return tuple(int(p) for p in name.split(".")) if re.fullmatch(r"\d+(\.\d+)*", name) else ()

    candidates = [d for d in Path("/usr/lib/postgresql").glob("*/bin") if _has_tools(d)]
    if not candidates:
        return None
    return max(candidates, key=lambda d: (version(d), d.name))


def _tool(bin_dir: Path, name: str) -> Optional[str]:
    """`name` from bin_dir, else from PATH."""
    p = bin_dir / name
    if os.access(p, os.X_OK):
        return str(p)
    return shutil.which(name)


def _as_root() -> bool:
    return os.geteuid() == 0


def _switch_user_prefix() -> Optional[list[str]]:
    """How root runs a command as PG_USER ([] when not root, None if it cannot)."""
    if not _as_root():
        return []
    runuser = shutil.which("runuser") or (
        "/usr/sbin/runuser" if os.access("/usr/sbin/runuser", os.X_OK) else None
    )
    if runuser:
        return [runuser, "-u", PG_USER, "--"]
    su = shutil.which("su")
    if su:
        return [su, "-s", "/bin/sh", PG_USER, "-c"]  # the command follows as one string
    return None


def pg_unavailable_reason() -> Optional[str]:
    """None when a server can be started here, else a one-line reason."""
    bin_dir = find_pg_bin()
    if bin_dir is None:
        return "no initdb/pg_ctl on PATH or under /usr/lib/postgresql/*/bin"
    for tool in ("postgres", "createdb", "psql"):
        if _tool(bin_dir, tool) is None:
            return f"no `{tool}` in {bin_dir} or on PATH"
    if _as_root():
        try:
            pwd.getpwnam(PG_USER)
        except KeyError:
            return f"running as root (initdb refuses root) and there is no `{PG_USER}` system user"
        if _switch_user_prefix() is None:
            return f"running as root and neither runuser nor su can run commands as `{PG_USER}`"
    try:
        r = subprocess.run(
            [str(bin_dir / "initdb"), "--version"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError) as e:
        return f"{bin_dir / 'initdb'} does not run: {e}"
    if r.returncode != 0:
        return f"{bin_dir / 'initdb'} --version failed: {(r.stderr or r.stdout).strip()[:200]}"
    return None


def unavailable(reason: str) -> NoReturn:
    """Skips the test with `PostgreSQL unavailable: <reason>`, or fails it when
    CRA_REQUIRE_POSTGRES=1."""
    message = f"PostgreSQL unavailable: {reason}"
    if os.environ.get("CRA_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"{message} (CRA_REQUIRE_POSTGRES=1)", pytrace=False)
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _clean_env() -> dict[str, str]:
    """The environment without PG* variables (PGDATA, PGHOST, PGPORT, ...)
    that would redirect the commands elsewhere."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PG")}


def _kill_postmaster(pid_file: Path) -> None:
    """SIGKILLs the postmaster of `pid_file` when pg_ctl could not stop it (its
    children exit once the postmaster is gone)."""
    try:
        pid = int(pid_file.read_text().split("\n", 1)[0])
        os.kill(pid, signal.SIGKILL)
    except (OSError, ValueError):
        pass


class PgServer:
    """One PostgreSQL server in a temporary directory; a context manager.

    `dsn` is `postgresql://postgres@127.0.0.1:<port>/cra`; `new_database(name)`
    creates another database and returns its DSN."""

    def __init__(self, bin_dir: Optional[Path] = None, start_timeout: int = 60) -> None:
        found = bin_dir or find_pg_bin()
        if found is None:
            raise PgServerError("PostgreSQL not found: " + (pg_unavailable_reason() or "?"))
        self.bin_dir: Path = found
        self.start_timeout = start_timeout
        self.port: Optional[int] = None
        self.root: Optional[Path] = None
        self._started = False

    # -- paths -------------------------------------------------------------

    def _need_root(self) -> Path:
        if self.root is None:
            raise PgServerError("the server is not started")
        return self.root

    @property
    def data_dir(self) -> Path:
        return self._need_root() / "data"

    @property
    def socket_dir(self) -> Path:
        return self._need_root() / "sock"

    @property
    def log_file(self) -> Path:
        return self._need_root() / "server.log"

    @property
    def dsn(self) -> str:
        return self.dsn_for(DB_NAME)

    def dsn_for(self, name: str) -> str:
        if self.port is None:
            raise PgServerError("the server is not started")
        return f"postgresql://{PG_USER}@127.0.0.1:{self.port}/{name}"

    # -- commands ------------------------------------------------------------

    def _run(self, argv: Sequence[str], what: str, timeout: float = 120) -> str:
        """Runs a server command (as PG_USER when root); its output, or a
        PgServerError with the output and the log's tail."""
        prefix = _switch_user_prefix()
        if prefix is None:
            raise PgServerError(f"cannot run commands as `{PG_USER}` (no runuser or su)")
        cmd = [*prefix, shlex.join(argv)] if prefix and "-c" in prefix else [*prefix, *argv]
        try:
            r = subprocess.run(
                cmd,
                capture_output=True,
                text=True,
                timeout=timeout,
                env=_clean_env(),
                cwd=self.root or "/",
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as e:
            raise PgServerError(f"{what}: timed out after {timeout}s{self._log_tail()}") from e
        if r.returncode != 0:
            out = (r.stdout + r.stderr).strip()
            raise PgServerError(
                f"{what} failed (exit {r.returncode}): {shlex.join(cmd)}\n{out}{self._log_tail()}"
            )
        return r.stdout

    def _log_tail(self) -> str:
        try:
            lines = self.log_file.read_text(encoding="utf-8", errors="replace").splitlines()
        except (OSError, PgServerError):
            return ""
        if not lines:
            return ""
        return f"\n--- tail of {self.log_file} ---\n" + "\n".join(lines[-_LOG_TAIL_LINES:])

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> PgServer:
        if self._started:
            return self
        base = "/tmp" if os.path.isdir("/tmp") else None
        self.root = Path(tempfile.mkdtemp(prefix="cra-pg-", dir=base))
        try:
            os.chmod(self.root, 0o755)  # PG_USER must traverse it when we are root
            self.socket_dir.mkdir(mode=0o755)
            if _as_root():
                pw = pwd.getpwnam(PG_USER)
                for p in (self.root, self.socket_dir):
                    os.chown(p, pw.pw_uid, pw.pw_gid)
            self._run(
                [
                    str(self.bin_dir / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-A",
                    "trust",
                    "-U",
                    PG_USER,
                    "--no-sync",
                    "-E",
                    "UTF8",
                    "--no-locale",
                ],
                "initdb",
            )
            self._start_server()
            self._started = True
            atexit.register(self.stop)  # a crashed run does not leave the server behind
            self._createdb(DB_NAME)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_server(self, attempts: int = 3) -> None:
        """pg_ctl start on a free port; another port if that one was taken
        in the meantime."""
        for attempt in range(attempts):
            self.port = _free_port()
            try:
                self._pg_ctl_start()
                return
            except PgServerError as e:
                if attempt + 1 < attempts and "Address already in use" in str(e):
                    continue
                raise

    def _pg_ctl_start(self) -> None:
        options = (
            f"-F -k {self.socket_dir} -c listen_addresses=127.0.0.1 -p {self.port}"
            " -c max_connections=200"
        )
        self._run(
            [
                str(self.bin_dir / "pg_ctl"),
                "start",
                "-w",
                "-t",
                str(self.start_timeout),
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_file),
                "-o",
                options,
            ],
            "pg_ctl start",
            timeout=self.start_timeout + 30,
        )

    def pause(self) -> None:
        """Stops the server (fast mode: clients are disconnected), keeping
        its data and its port for `resume()`."""
        self._run(
            [str(self.bin_dir / "pg_ctl"), "stop", "-m", "fast", "-w", "-D", str(self.data_dir)],
            "pg_ctl stop",
        )

    def resume(self) -> None:
        """Starts a paused server again, on the same port."""
        self._pg_ctl_start()

    def _createdb(self, name: str) -> None:
        if not _DB_NAME_RE.fullmatch(name):
            raise ValueError(f"not a plain database name: {name!r}")
        createdb = _tool(self.bin_dir, "createdb")
        if createdb is None:
            raise PgServerError(f"no createdb in {self.bin_dir} or on PATH")
        self._run(
            [createdb, "-h", str(self.socket_dir), "-p", str(self.port), "-U", PG_USER, name],
            f"createdb {name}",
        )

    def new_database(self, name: str) -> str:
        """Creates database `name` (lowercase letters, digits, `_`) and
        returns its DSN."""
        if not self._started:
            raise PgServerError("the server is not started")
        self._createdb(name)
        return self.dsn_for(name)

    def psql(self, sql: str, dsn: Optional[str] = None, timeout: float = 60) -> str:
        """Runs `sql` with psql on `dsn` (default: the `cra` database) and
        returns the unaligned, tuples-only output."""
        psql = _tool(self.bin_dir, "psql")
        if psql is None:
            raise PgServerError(f"no psql in {self.bin_dir} or on PATH")
        argv = [psql, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", dsn or self.dsn]
        r = subprocess.run(
            [*argv, "-c", sql],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=_clean_env(),
            stdin=subprocess.DEVNULL,
        )
        if r.returncode != 0:
            raise PgServerError(f"psql failed (exit {r.returncode}): {sql!r}\n{r.stderr.strip()}")
        return r.stdout

    def stop(self) -> None:
        """Stops the server (immediate mode) and removes its directory;
        idempotent."""
        atexit.unregister(self.stop)
        root = self.root
        if root is None:
            return
        try:
            if (root / "data" / "postmaster.pid").exists():
                try:
                    self._run(
                        [
                            str(self.bin_dir / "pg_ctl"),
                            "stop",
                            "-m",
                            "immediate",
                            "-w",
                            "-D",
                            str(root / "data"),
                        ],
                        "pg_ctl stop",
                        timeout=60,
                    )
                except PgServerError:
                    _kill_postmaster(root / "data" / "postmaster.pid")
        finally:
            self._started = False
            self.root = None
            self.port = None
            shutil.rmtree(root, ignore_errors=True)

    def __enter__(self) -> PgServer:
        return self.start()

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.stop()
