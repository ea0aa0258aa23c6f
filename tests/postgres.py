"""A throw-away PostgreSQL server for the tests of the prediction log's PostgreSQL path: Debian's `postgresql` binaries
(`initdb`, `pg_ctl`; `.ci/run` installs the package) run a private cluster in a temporary folder, listening on a
Unix socket there only (no TCP port), with trust authentication for its one role. Run as root, the cluster belongs
to the `postgres` user (PostgreSQL refuses to run as root). Each test gets a database of its own."""

from __future__ import annotations
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

ROLE = 'lifecycle'


def binaries() -> Path | None:
    "The folder of `initdb` and `pg_ctl` (on PATH, or Debian's newest /usr/lib/postgresql/N/bin), None without them."
    found = shutil.which('pg_ctl')
    if found and shutil.which('initdb'):
        return Path(os.path.realpath(found)).parent

    def version(path: str) -> tuple:
        return tuple(int(n) if n.isdigit() else 0 for n in Path(path).parts[-3].split('.'))

    versions = sorted(glob.glob('/usr/lib/postgresql/*/bin/pg_ctl'), key=version)
    return Path(versions[-1]).parent if versions else None


def missing() -> str:
    "Why these tests cannot run here ('' when they can)."
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return 'psycopg is not installed (the dev extra installs it)'
    if binaries() is None:
        return 'PostgreSQL is not installed (apt-get install postgresql; .ci/run does)'
    if os.geteuid() == 0:
        try:
            pwd.getpwnam('postgres')
        except KeyError:
            return 'running as root with no postgres user to run the server as'
    return ''


class Cluster:
    "A private PostgreSQL cluster: `start()`, `database()` for a new empty database's URL, `stop()`."

    def __init__(self):
        self.bin = binaries()
        self.dir = Path(tempfile.mkdtemp(prefix='lifecycle-pg-'))
        self.data, self.socket = self.dir / 'data', self.dir
        self.user = 'postgres' if os.geteuid() == 0 else None
        if self.user:  # the server's user owns the folder (its socket and data)
            pw = pwd.getpwnam(self.user)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        self.dir.chmod(0o755)

    def _run(self, *args: str) -> None:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if self.user:
            cmd = ['runuser', '-u', self.user, '--', *cmd]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120, cwd=self.dir)

    def start(self) -> Cluster:
        self._run('initdb', '-D', str(self.data), '-U', ROLE, '--auth=trust', '--no-sync', '-E', 'UTF8')
        self._up()
        return self

    def _up(self) -> None:
        opts = f"-c listen_addresses='' -c unix_socket_directories={self.socket} -c fsync=on -c max_connections=50"
        self._run('pg_ctl', '-D', str(self.data), '-o', opts, '-l', str(self.dir / 'server.log'), '-w', 'start')

    def restart(self) -> None:
        """Stop and start the server: every connection to it ends. (Not `pg_ctl restart`: given no log file, its server
        would keep the pipes this process reads `pg_ctl` through.)"""
        self._run('pg_ctl', '-D', str(self.data), '-m', 'fast', '-w', 'stop')
        self._up()

    def url(self, database: str = 'postgres') -> str:
        return f'postgresql+psycopg://{ROLE}@/{database}?host={self.socket}'

    def database(self) -> str:
        "A new empty database: its SQLAlchemy URL."
        import psycopg

        name = f't_{uuid.uuid4().hex[:12]}'
        with psycopg.connect(host=str(self.socket), user=ROLE, dbname='postgres', autocommit=True) as c:
            c.execute(f'CREATE DATABASE {name}')
        return self.url(name)

    def stop(self) -> None:
        try:
            self._run('pg_ctl', '-D', str(self.data), '-m', 'immediate', '-w', 'stop')
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
