"""A real, throw-away PostgreSQL server for the tests.

``PostgresServer`` runs ``initdb`` into a temporary directory and starts ``postgres`` on a free
loopback port with its unix socket in that directory, tuned for tests (no fsync). PostgreSQL
refuses to run as root, so when the tests run as root the server runs as the ``postgres`` system
user that Debian's package creates.

``ExternalPostgres`` wraps a server someone else runs (``S2S_TEST_POSTGRES_URL``) with the same
``url()``, ``create_database()`` and ``drop_database()``.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from .servers import free_port

DRIVER = "postgresql+psycopg"


class PostgresUnavailable(RuntimeError):
    """PostgreSQL binaries are missing or the server would not start."""


def find_bindir() -> Path:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres``, newest version first.

    Debian keeps them in ``/usr/lib/postgresql/<version>/bin`` (not on ``PATH``); other systems
    put them on ``PATH``.
    """
    candidates = sorted(
        (Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")),
        key=lambda d: _version_key(d.parent.name),
        reverse=True,
    )
    for name in ("initdb", "pg_ctl"):
        found = shutil.which(name)
        if found:
            candidates.append(Path(os.path.realpath(found)).parent)
    for bindir in candidates:
        if all((bindir / tool).exists() for tool in ("initdb", "pg_ctl", "postgres")):
            return bindir
    raise PostgresUnavailable(
        "PostgreSQL is not installed (no initdb/pg_ctl in /usr/lib/postgresql/*/bin or on PATH): "
        "run `bash .ci/run` or `apt-get install -y postgresql`, or set S2S_TEST_POSTGRES_URL"
    )


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split(".") if part.isdigit())


def _psycopg_url(url: str) -> str:
    """The libpq form of a SQLAlchemy URL (``postgresql+psycopg://`` -> ``postgresql://``)."""
    scheme, rest = url.split("://", 1)
    return f"postgresql://{rest}" if scheme.startswith("postgres") else url


def _with_database(url: str, dbname: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{dbname}"))


def _sqlalchemy_url(url: str) -> str:
    scheme, rest = url.split("://", 1)
    return f"{DRIVER}://{rest}" if scheme in ("postgres", "postgresql", DRIVER) else url


class _Admin:
    """CREATE/DROP DATABASE through psycopg on the server's maintenance database."""

    admin_url: str

    def url(self, dbname: str) -> str:
        """SQLAlchemy URL of database ``dbname`` on this server."""
        return _sqlalchemy_url(_with_database(self.admin_url, dbname))

    def execute(self, sql: str) -> None:
        """Run one statement on the maintenance database, outside a transaction."""
        import psycopg

        with psycopg.connect(_psycopg_url(self.admin_url), autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql)

    def create_database(self, dbname: str | None = None) -> str:
        """Create an empty database (a unique name when ``None``); return its SQLAlchemy URL."""
        dbname = dbname or f"s2s_test_{uuid.uuid4().hex[:12]}"
        self.execute(f'CREATE DATABASE "{dbname}"')
        return self.url(dbname)

    def drop_database(self, dbname: str) -> None:
        """Drop database ``dbname``, disconnecting whoever is still connected to it."""
        self.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


class ExternalPostgres(_Admin):
    """A PostgreSQL server run by someone else, given by URL (``S2S_TEST_POSTGRES_URL``)."""

    def __init__(self, url: str) -> None:
        self.admin_url = url
        self.database_url = _sqlalchemy_url(url)

    def start(self) -> ExternalPostgres:
        """Nothing to start: only checks the server answers."""
        self.execute("SELECT 1")
        return self

    def stop(self) -> None:
        """Nothing to stop: the server is not ours."""


class PostgresServer(_Admin):
    """A private PostgreSQL server in a temporary directory, on a free loopback port.

    :param database: name of the database created at start (its URL is ``database_url``).
    :param settings: extra ``postgres -c`` settings.
    """

    def __init__(self, database: str = "s2s_test", settings: dict[str, str] | None = None) -> None:
        self.database = database
        self.settings = {
            "listen_addresses": "127.0.0.1",
            # Durability is not what the tests check; speed is welcome.
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "200",
            **(settings or {}),
        }
        self.bindir: Path | None = None
        self.root: Path | None = None
        self.port: int | None = None
        self.user = "postgres"
        self.database_url = ""
        self.admin_url = ""

    @property
    def datadir(self) -> Path:
        assert self.root is not None
        return self.root / "data"

    @property
    def logfile(self) -> Path:
        assert self.root is not None
        return self.root / "postgres.log"

    def _run_as(self) -> list[str]:
        if os.geteuid() != 0:
            return []
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            raise PostgresUnavailable(
                "running as root, PostgreSQL needs an unprivileged user to run as, and there is no "
                "'postgres' user: install Debian's postgresql package or set S2S_TEST_POSTGRES_URL"
            ) from None
        runuser = shutil.which("runuser")
        if runuser:
            return [runuser, "-u", "postgres", "--"]
        return ["su", "postgres", "-s", "/bin/sh", "-c"]  # needs the command as one string

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        prefix = self._run_as()
        if prefix and prefix[0] == "su":
            cmd = prefix + [" ".join(_shell_quote(a) for a in args)]
        else:
            cmd = prefix + list(args)
        return subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.root,
            stdin=subprocess.DEVNULL,
        )

    def start(self) -> PostgresServer:
        """initdb, start the server, create ``database``. Raises ``PostgresUnavailable``."""
        self.bindir = find_bindir()
        # Not pytest's tmp dir: that lives under a root-only directory the postgres user cannot enter.
        self.root = Path(tempfile.mkdtemp(prefix="s2s-pg-"))
        os.chmod(self.root, 0o700)
        if os.geteuid() == 0:
            self._run_as()  # fail early and clearly when there is no postgres user
            entry = pwd.getpwnam("postgres")
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        else:
            self.user = pwd.getpwuid(os.geteuid()).pw_name
        initdb = self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.datadir),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )
        if initdb.returncode != 0:
            raise PostgresUnavailable(f"initdb failed ({initdb.returncode}): {initdb.stderr.strip()}")
        last_error = ""
        for _ in range(3):  # another process may take the free port between probing and binding
            self.port = free_port()
            options = " ".join(
                [f"-p {self.port}", f"-k {self.root}"] + [f"-c {k}={v}" for k, v in self.settings.items()]
            )
            started = self._run(
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.datadir),
                "-l",
                str(self.logfile),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "start",
            )
            if started.returncode == 0:
                break
            last_error = f"{started.stdout.strip()} {started.stderr.strip()} {self._log_tail()}"
        else:
            self._cleanup()
            raise PostgresUnavailable(f"PostgreSQL did not start: {last_error}")
        self.admin_url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._wait_ready()
        self.database_url = self.create_database(self.database)
        return self

    def _wait_ready(self, timeout: float = 30) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(_psycopg_url(self.admin_url), connect_timeout=5):
                    return
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise PostgresUnavailable(f"PostgreSQL does not accept connections: {exc}") from exc
                time.sleep(0.1)

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.logfile.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        """Stop the server (fast shutdown) and delete its directory."""
        if self.root is None:
            return
        if self.bindir is not None and (self.datadir / "postmaster.pid").exists():
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "fast", "-w", "stop", timeout=60)
        self._cleanup()

    def _cleanup(self) -> None:
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _shell_quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)


def server_from_environment() -> PostgresServer | ExternalPostgres:
    """``ExternalPostgres`` when ``S2S_TEST_POSTGRES_URL`` is set, else a private ``PostgresServer``."""
    url = os.environ.get("S2S_TEST_POSTGRES_URL")
    return ExternalPostgres(url) if url else PostgresServer()
