"""A throwaway PostgreSQL cluster on 127.0.0.1 for tests: Debian's server binaries, a temp data
directory, a free port, password authentication; stopped and deleted on exit.

PostgreSQL refuses to run as root, so as root the cluster belongs to the `postgres` user (which
Debian's package creates), or to a system user made for it when there is none.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

from z4_assets_tests.servers import free_port

INSTALL_HINT = ("install them with `apt-get install -y postgresql` (Debian/Ubuntu); "
                ".ci/run does this before the tests")


def server_bin_dir() -> Path | None:
    """The newest Debian /usr/lib/postgresql/<v>/bin with initdb, pg_ctl and postgres, else PATH."""
    def version(d: str) -> float:
        try:
            return float(Path(d).parent.name)
        except ValueError:
            return 0.0

    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True):
        if all((Path(d) / b).is_file() for b in ("initdb", "pg_ctl", "postgres")):
            return Path(d)
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(initdb).parent
    return None


def _cluster_user() -> pwd.struct_passwd | None:
    """None when not root; otherwise the unprivileged owner of the cluster."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "z4-postgres"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                    "z4-postgres"], check=True, capture_output=True)
    return pwd.getpwnam("z4-postgres")


class ThrowawayPostgres:
    """`with ThrowawayPostgres(bin_dir) as pg:` -> pg.host, pg.port, pg.user, pg.password, pg.dsn(db)."""

    def __init__(self, bin_dir: Path):
        self.bin = bin_dir
        self.host, self.user = "127.0.0.1", "z4"
        self.password = secrets.token_urlsafe(18)
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="z4-pg-"))
        self.data = self.dir / "data"
        self.owner = _cluster_user()
        self.started = False

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        cmd = [str(a) for a in args]
        if self.owner is not None:
            cmd = ["runuser", "-u", self.owner.pw_name, "--", *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=self.dir)
        if proc.returncode != 0:
            log = self.dir / "postgres.log"
            tail = log.read_text()[-2000:] if log.is_file() else ""
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr[-2000:]}\n{tail}")
        return proc

    def __enter__(self) -> "ThrowawayPostgres":
        pwfile = self.dir / "pwfile"
        pwfile.write_text(self.password + "\n")
        os.chmod(pwfile, 0o600)
        if self.owner is not None:
            for p in (self.dir, pwfile):
                os.chown(p, self.owner.pw_uid, self.owner.pw_gid)
        try:
            self._run(self.bin / "initdb", "-D", self.data, "-U", self.user, f"--pwfile={pwfile}",
                      "--auth-host=scram-sha-256", "--auth-local=scram-sha-256", "-E", "UTF8",
                      "--locale=C", "--no-sync")
            pwfile.unlink()
            opts = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir} -c fsync=off "
                    "-c synchronous_commit=off -c full_page_writes=off")
            self._run(self.bin / "pg_ctl", "-D", self.data, "-l", self.dir / "postgres.log", "-o", opts,
                      "-w", "-t", "60", "start")
            self.started = True
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        try:
            if self.started:
                self._run(self.bin / "pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")
                self.started = False
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def connect(self, dbname: str = "postgres"):
        import psycopg2

        return psycopg2.connect(host=self.host, port=self.port, user=self.user, password=self.password,
                                dbname=dbname)

    def create_database(self, name: str) -> None:
        conn = self.connect()
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()
