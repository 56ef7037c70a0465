"""A real PostgreSQL server for the tests: Debian's `postgresql`, in a temporary directory.

`PostgresServer.start()` finds `initdb` and `pg_ctl` (on PATH or under
/usr/lib/postgresql/*/bin), installing the package with apt-get when neither is there and the
process is root; runs `initdb` with a password (scram-sha-256 over TCP, as a real deployment
connects) and `pg_ctl start` on 127.0.0.1 and a free port, as the unprivileged `postgres` user
when run as root (PostgreSQL refuses to run as root). `stop()` and `start()` again restart the
same cluster: the fail-closed tests take the database away and give it back.

`database(name)` creates a fresh database and returns its URL, so that each test starts empty.
"""

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Final

USER: Final = "record_test"
RUN_AS: Final = "postgres"  # Debian's package creates it


def find_bin_dir(install: bool = True) -> Path:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if candidates:
        return Path(candidates[-1]).parent
    if not install or os.geteuid() != 0:
        raise RuntimeError("initdb not found: install Debian's postgresql package")
    subprocess.run(["apt-get", "update"], check=True, capture_output=True)
    subprocess.run(["apt-get", "install", "-y", "postgresql"], check=True, capture_output=True)
    return find_bin_dir(install=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    def __init__(self) -> None:
        self.bin_dir = find_bin_dir()
        self.root = Path(tempfile.mkdtemp(prefix="record-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = free_port()
        self.password = secrets.token_urlsafe(16)
        self._as_root = os.geteuid() == 0
        if self._as_root:  # the cluster's files belong to the user that runs it
            owner = pwd.getpwnam(RUN_AS)
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
        self.root.chmod(0o700)
        self._initdb()

    def _run(self, argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        prefix = ["runuser", "-u", RUN_AS, "--"] if self._as_root else []
        return subprocess.run(
            [*prefix, *argv], check=True, capture_output=True, text=True, cwd=self.root
        )

    def _initdb(self) -> None:
        pwfile = self.root / "pw"
        pwfile.write_text(self.password)
        if self._as_root:
            owner = pwd.getpwnam(RUN_AS)
            os.chown(pwfile, owner.pw_uid, owner.pw_gid)
        pwfile.chmod(0o600)
        self._run(
            [
                str(self.bin_dir / "initdb"),
                "-D",
                str(self.data),
                "-U",
                USER,
                f"--pwfile={pwfile}",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--no-instructions",
            ]
        )
        pwfile.unlink()

    def start(self) -> None:
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root}"
        self._run(
            [
                str(self.bin_dir / "pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.log),
                "-o",
                options,
                "-w",
                "start",
            ]
        )

    def stop(self) -> None:
        self._run([str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"])

    def running(self) -> bool:
        ctl = [str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "status"]
        try:
            self._run(ctl)
        except subprocess.CalledProcessError:
            return False
        return True

    def pid(self) -> int:
        """The postmaster's process id (the first line of postmaster.pid)."""
        return int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def database(self, name: str) -> str:
        """A new empty database; its URL."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def remove(self) -> None:
        if self.running():
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
