"""A throwaway PostgreSQL server for the tests that prove the store on a second dialect.

``pg_server`` (session) runs ``initdb`` and ``pg_ctl`` into a temporary folder, listening on
a unix socket only, and removes it all afterwards; ``pg_url`` (per test) creates a fresh
database on it and drops it after the test. A test module imports them as
``pg_server_fixture`` and ``pg_url_fixture``. Without the server binaries (a development
machine without the Debian package ``postgresql``) or the driver (``psycopg``), the tests
that use them skip with the reason; ``./run test`` installs both, so CI runs them.

PostgreSQL refuses to run as root, so as root the server runs as the ``postgres`` user.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

# Only the socket file's name carries the port: nothing listens on TCP.
PORT = 5432
SUPERUSER = "postgres"
START_TIMEOUT_S = 60


@dataclass(frozen=True)
class PgServer:
    socket_dir: Path

    def url(self, database: str, driver: str = "postgresql+psycopg") -> str:
        return f"{driver}://{SUPERUSER}@/{database}?host={self.socket_dir}&port={PORT}"

    def admin(self, sql: str) -> None:
        """Run one statement in the maintenance database, outside a transaction
        (CREATE/DROP DATABASE cannot run inside one)."""
        import psycopg

        with psycopg.connect(host=str(self.socket_dir), port=PORT, user=SUPERUSER,
                             dbname="postgres", autocommit=True) as conn:
            conn.execute(sql)


def _server_bin(name: str) -> str | None:
    """``name`` from PATH, else from the newest /usr/lib/postgresql/<version>/bin (Debian
    keeps the server binaries off PATH)."""
    found = shutil.which(name)
    if found:
        return found
    installed = glob.glob(f"/usr/lib/postgresql/*/bin/{name}")
    return max(installed, key=_major_version, default=None)


def _major_version(path: str) -> int:
    folder = Path(path).parts[-3]  # /usr/lib/postgresql/<version>/bin/<name>
    return int(folder) if folder.isdigit() else 0


def _as_server_user() -> tuple[list[str], int | None]:
    """The command prefix that runs the server as a user PostgreSQL accepts, and that
    user's uid when it is not us."""
    if os.geteuid() != 0:
        return [], None
    try:
        uid = pwd.getpwnam(SUPERUSER).pw_uid
    except KeyError:
        pytest.skip("running as root and there is no 'postgres' user to run PostgreSQL as")
    runuser = shutil.which("runuser")
    if runuser is None:
        pytest.skip("running as root and runuser(1) is missing to run PostgreSQL as postgres")
    return [runuser, "-u", SUPERUSER, "--"], uid


@pytest.fixture(name="pg_server", scope="session")
def pg_server_fixture() -> Iterator[PgServer]:
    initdb, pg_ctl = _server_bin("initdb"), _server_bin("pg_ctl")
    if initdb is None or pg_ctl is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found: "
                    "install the Debian package 'postgresql' (./run test does)")
    pytest.importorskip("psycopg", reason="the PostgreSQL driver psycopg is not installed "
                                          "(pip install -e '.[dev]')")
    prefix, uid = _as_server_user()
    # Not pytest's tmp_path: its parents are mode 0700 root, which the postgres user
    # cannot traverse.
    base = Path(tempfile.mkdtemp(prefix="gate-pg-"))
    data = base / "data"
    if uid is not None:
        os.chown(base, uid, -1)
    log = base / "server.log"

    def run(*args: str) -> None:
        done = subprocess.run([*prefix, *args], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{Path(args[0]).name} failed ({done.returncode}): "
                               f"{done.stderr.strip()}\n{tail}")

    try:
        run(initdb, "-D", str(data), "-U", SUPERUSER, "-A", "trust", "-E", "UTF8",
            "--no-locale", "--no-sync")
        # fsync off: a throwaway cluster's speed, not its crash safety, matters here;
        # commit visibility, which the tests assert, is unchanged.
        options = (f"-k {base} -p {PORT} -c listen_addresses='' -c fsync=off "
                   f"-c full_page_writes=off")
        run(pg_ctl, "-D", str(data), "-l", str(log), "-o", options, "-w",
            "-t", str(START_TIMEOUT_S), "start")
        try:
            yield PgServer(base)
        finally:
            run(pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop")
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(name="pg_url")
def pg_url_fixture(pg_server: PgServer) -> Iterator[str]:
    """A fresh, empty database on the throwaway server, dropped after the test."""
    name = f"gate_{uuid.uuid4().hex[:12]}"
    pg_server.admin(f'CREATE DATABASE "{name}"')
    try:
        yield pg_server.url(name)
    finally:
        # FORCE: a connection the test leaked must not keep the database alive.
        pg_server.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
