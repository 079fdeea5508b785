"""One throwaway PostgreSQL cluster per test session, on 127.0.0.1 and a unix socket.

Tests of database-backed checks (backups, freshness, data products) need a real
server: this module starts one with the machine's PostgreSQL binaries
(`initdb` + `pg_ctl` in a temp dir owned by the `postgres` user when running
as root) and stops it at the end of the session. A test folder uses it with
`from tests.pgcluster import pg_cluster  # noqa: F401` in its conftest; every folder
that does so shares the one cluster.

Authentication: the `postgres` superuser is trusted; the role `APP_USER` must
give its password (scram-sha-256 over TCP), so tests can prove a password in a
DSN never leaks into a summary.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

APP_USER = "sre_app"
APP_PASSWORD = "Drill-Secret-9f2c"
_START_TIMEOUT = 60
_STOP_TIMEOUT = 30


def pg_bin_dir() -> Path | None:
    """The newest PostgreSQL server binary directory on this machine, if any."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PgCluster:
    bin_dir: Path
    root: Path
    port: int
    socket_dir: Path
    run_as: str | None

    @property
    def dsn(self) -> str:
        """Superuser DSN over TCP (trust auth), to the maintenance database."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def app_dsn(self, dbname: str = "postgres", password: str = APP_PASSWORD) -> str:
        """DSN of the password-authenticated role, password included (as users write it)."""
        return f"postgresql://{APP_USER}:{password}@127.0.0.1:{self.port}/{dbname}"

    def tool(self, name: str) -> str:
        return str(self.bin_dir / name)

    def _cmd(self, argv: list[str]) -> list[str]:
        return ["runuser", "-u", self.run_as, "--", *argv] if self.run_as else argv

    def psql(self, sql: str, dbname: str = "postgres", timeout: float = 30) -> str:
        """Run SQL as the superuser over the unix socket; return unaligned, tuples-only output."""
        out = subprocess.run(
            [self.tool("psql"), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", str(self.socket_dir),
             "-p", str(self.port), "-U", "postgres", "-d", dbname, "-c", sql],
            capture_output=True, text=True, timeout=timeout, check=False)
        if out.returncode != 0:
            raise RuntimeError(f"psql failed ({out.returncode}): {out.stderr.strip()}")
        return out.stdout.strip()

    def create_database(self, prefix: str = "t") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        self.psql(f'CREATE DATABASE "{name}" OWNER {APP_USER}')
        return name

    def databases(self) -> list[str]:
        return self.psql("SELECT datname FROM pg_database ORDER BY 1").splitlines()

    def pg_dump(self, dbname: str, out: Path, fmt: str = "c", timeout: float = 60) -> Path:
        subprocess.run([self.tool("pg_dump"), f"-F{fmt}", "-h", str(self.socket_dir), "-p", str(self.port),
                        "-U", "postgres", "-f", str(out), dbname], check=True, timeout=timeout, capture_output=True)
        return out

    def start(self) -> None:
        log = self.root / "server.log"
        args = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.socket_dir} -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=60")
        subprocess.run(self._cmd([self.tool("pg_ctl"), "-D", str(self.root / "data"), "-l", str(log), "-o", args,
                                  "-w", "-t", str(_START_TIMEOUT), "start"]),
                       check=True, timeout=_START_TIMEOUT + 10, capture_output=True)

    def stop(self) -> None:
        subprocess.run(self._cmd([self.tool("pg_ctl"), "-D", str(self.root / "data"), "-m", "immediate", "-w",
                                  "-t", str(_STOP_TIMEOUT), "stop"]),
                       timeout=_STOP_TIMEOUT + 10, capture_output=True, check=False)


def start_cluster() -> PgCluster:
    """initdb + start a cluster in a fresh temp dir. The caller must `stop()` and remove `root`."""
    bin_dir = pg_bin_dir()
    if bin_dir is None:
        raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl) not found; run scripts/test-deps.sh")
    root = Path(tempfile.mkdtemp(prefix="sre-agent-pg-"))
    run_as = "postgres" if os.geteuid() == 0 else None
    if run_as:
        pw = pwd.getpwnam(run_as)
        os.chown(root, pw.pw_uid, pw.pw_gid)
    root.chmod(0o755)
    socket_dir = root / "sock"
    cluster = PgCluster(bin_dir, root, _free_port(), socket_dir, run_as)
    try:
        subprocess.run(cluster._cmd([cluster.tool("initdb"), "-D", str(root / "data"), "-U", "postgres",
                                     "-A", "trust", "--no-sync", "-E", "UTF8", "--locale=C.UTF-8"]),
                       check=True, timeout=120, capture_output=True)
        subprocess.run(cluster._cmd(["mkdir", "-p", str(socket_dir)]), check=True, timeout=10)
        hba = ("local all all trust\n"
               "host all postgres 127.0.0.1/32 trust\n"
               "host all all 127.0.0.1/32 scram-sha-256\n")
        subprocess.run(cluster._cmd(["sh", "-c", f"cat > {root / 'data' / 'pg_hba.conf'}"]), input=hba.encode(),
                       check=True, timeout=10)
        cluster.start()
        cluster.psql(f"CREATE ROLE {APP_USER} LOGIN CREATEDB PASSWORD '{APP_PASSWORD}'")
    except BaseException:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
        raise
    return cluster


_shared: PgCluster | None = None
_users = 0


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """A running cluster for the whole session; databases are created per test.

    Each test folder's conftest registers this fixture; the module-level
    reference count makes them all share one cluster, stopped by the last user.
    """
    global _shared, _users
    if _shared is None:
        try:
            _shared = start_cluster()
        except (RuntimeError, subprocess.CalledProcessError) as exc:
            stderr = getattr(exc, "stderr", b"") or b""
            pytest.fail(f"cannot start PostgreSQL: {exc} {stderr.decode(errors='replace')[-500:]}")
    _users += 1
    try:
        yield _shared
    finally:
        _users -= 1
        if _users == 0 and _shared is not None:
            cluster, _shared = _shared, None
            cluster.stop()
            with contextlib.suppress(OSError):
                shutil.rmtree(cluster.root, ignore_errors=True)
