"""A throwaway PostgreSQL + PostGIS cluster for the tests (Debian's postgresql, postgis).

``start_cluster`` runs initdb and pg_ctl in a temporary folder on a free loopback port, as
the ``postgres`` system user when the tests run as root (PostgreSQL refuses to run as
root). TCP connections need a password (scram-sha-256), so the tests exercise the password
path; the superuser connects over the cluster's own Unix socket.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

USER = "analyst"
PASSWORD = "not-in-any-output-9f3a"
DATABASE = "gis"


def find_bindir() -> Path | None:
    """The newest ``/usr/lib/postgresql/*/bin`` holding initdb and pg_ctl, or None."""
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                    key=lambda p: int(Path(p).parent.name), reverse=True):
        if Path(d, "initdb").is_file() and Path(d, "pg_ctl").is_file():
            return Path(d)
    found = shutil.which("pg_ctl")
    return Path(found).parent if found and Path(found).with_name("initdb").is_file() else None


def postgis_available(bindir: Path) -> bool:
    share = subprocess.run([str(bindir / "pg_config"), "--sharedir"], capture_output=True,
                           text=True).stdout.strip() if (bindir / "pg_config").is_file() else ""
    shares = [share] if share else []
    shares += glob.glob(f"/usr/share/postgresql/{bindir.parent.name}")
    return any(Path(s, "extension", "postgis.control").is_file() for s in shares)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Cluster:
    bindir: Path
    root: Path
    port: int
    runas: str | None

    @property
    def url(self) -> str:
        """The sites source URL without password (it comes from PGPASSWORD)."""
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{DATABASE}"

    def _cmd(self, args: list[str]) -> list[str]:
        return ["runuser", "-u", self.runas, "--", *args] if self.runas else args

    def psql(self, sql: str, *, db: str = DATABASE) -> str:
        """Run SQL as the superuser over the Unix socket; returns stdout."""
        out = subprocess.run(
            self._cmd([str(self.bindir / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1",
                       "-h", str(self.root / "sock"), "-p", str(self.port), "-U", "postgres",
                       "-d", db, "-At", "-c", sql]),
            capture_output=True, text=True, timeout=60)
        if out.returncode:
            raise RuntimeError(f"psql failed: {out.stderr.strip()}")
        return out.stdout

    def stop(self) -> None:
        subprocess.run(self._cmd([str(self.bindir / "pg_ctl"), "-D", str(self.root / "data"),
                                  "-m", "fast", "-w", "stop"]), capture_output=True, timeout=60)
        shutil.rmtree(self.root, ignore_errors=True)


def start_cluster(bindir: Path) -> Cluster:
    """initdb + pg_ctl start on a free port; a database with PostGIS and a login role."""
    runas = None
    root = Path(tempfile.mkdtemp(prefix="sitescreen-pg-"))
    if os.geteuid() == 0:
        runas = "postgres"
        entry = pwd.getpwnam(runas)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    (root / "sock").mkdir()
    if runas:
        os.chown(root / "sock", pwd.getpwnam(runas).pw_uid, pwd.getpwnam(runas).pw_gid)
    cluster = Cluster(bindir, root, free_port(), runas)
    run = dict(capture_output=True, text=True, timeout=120, check=True)
    subprocess.run(cluster._cmd([str(bindir / "initdb"), "-D", str(root / "data"), "-U",
                                 "postgres", "--auth-local=trust",
                                 "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync"]),
                   **run)
    opts = (f"-c listen_addresses=127.0.0.1 -c port={cluster.port} "
            f"-c unix_socket_directories={root / 'sock'} -c fsync=off -c full_page_writes=off "
            "-c shared_buffers=32MB -c max_connections=20")
    subprocess.run(cluster._cmd([str(bindir / "pg_ctl"), "-D", str(root / "data"), "-o", opts,
                                 "-l", str(root / "log"), "-w", "-t", "60", "start"]), **run)
    cluster.psql(f"CREATE ROLE {USER} LOGIN PASSWORD '{PASSWORD}'", db="postgres")
    cluster.psql(f"CREATE DATABASE {DATABASE} OWNER {USER}", db="postgres")
    cluster.psql("CREATE EXTENSION postgis")
    return cluster
