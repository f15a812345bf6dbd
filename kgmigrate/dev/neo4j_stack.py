"""The embedded Neo4j: Neo4j Community with its Bolt server, run as a real JVM process on a
loopback port, for development, the demo and the tests.

It is the same database engine as the packaged server (Cypher runtime, transactions, locks,
Bolt), started from jars that Maven resolves at install time (`tools/neo4j-server`, versions
pinned in its `versions.properties`). Embedded defaults differ from a packaged server, so the
launcher sets what production has: auth on (user `neo4j`, a password from
`KGMIGRATE_NEO4J_PASSWORD` or one generated once and kept in the data directory, mode 0600),
a bounded heap, page cache and transaction memory, and a clean shutdown on SIGTERM.
Readiness is a real Bolt login with the driver, not a log line.
"""

import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from kgmigrate.cypher import identifiers as ident
from kgmigrate.dev.stack import live_pid, locked, wait_exit
from kgmigrate.errors import StackError
from kgmigrate.graph.base import GraphBackend
from kgmigrate.ledger import demo
from kgmigrate.runtime.settings import (
    MEMORY_SIZE,
    GraphTarget,
    Settings,
    child_environment,
    java_home,
)

HOST = "127.0.0.1"
PROJECT_DIR = Path(__file__).resolve().parents[2] / "tools" / "neo4j-server"
VERSIONS_FILE = PROJECT_DIR / "versions.properties"
JVM_ROOT = Path("/usr/lib/jvm")
_START_TIMEOUT_S = 180.0
_STOP_TIMEOUT_S = 60.0
_MAIN_CLASS = "kgmigrate.neo4j.Server"


@dataclass(frozen=True)
class Neo4jVersion:
    """One pinned Neo4j release and the Java major version it runs on."""

    name: str  # the selector users type: "lts", "calendar"
    version: str  # Maven version, e.g. 5.26.30
    java: int

    @property
    def lib_dir(self) -> Path:
        return PROJECT_DIR / "target" / f"neo4j-{self.version}"

    @property
    def built(self) -> bool:
        return (self.lib_dir / "kgmigrate-neo4j-server-1.jar").is_file()


def versions() -> dict[str, Neo4jVersion]:
    """The versions of `versions.properties`, default first."""
    found: dict[str, Neo4jVersion] = {}
    for line in VERSIONS_FILE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, value = line.partition("=")
        version, java = value.split()
        found[name.strip()] = Neo4jVersion(name.strip(), version, int(java))
    return found


def version_named(name: str | None) -> Neo4jVersion:
    known = versions()
    if name is None:
        return next(iter(known.values()))
    for candidate in known.values():
        if name in (candidate.name, candidate.version):
            return candidate
    raise StackError(f"unknown Neo4j version {name!r}; choose one of "
                     + ", ".join(f"{v.name} ({v.version})" for v in known.values()))


def find_java(major: int) -> Path:
    """A JDK home whose major version is `major`: JAVA_HOME, then /usr/lib/jvm, then `java` on
    the PATH. Neo4j refuses to start on a Java it was not built for, so the match is exact."""
    candidates: list[Path] = []
    home = java_home()
    if home is not None:
        candidates.append(home)
    if JVM_ROOT.is_dir():
        candidates.extend(sorted(p for p in JVM_ROOT.iterdir() if not p.is_symlink()))
    on_path = shutil.which("java")
    if on_path:
        candidates.append(Path(on_path).resolve().parent.parent)
    for home in candidates:
        if (home / "bin" / "java").is_file() and _java_major(home) == major:
            return home
    raise StackError(f"the embedded Neo4j needs Java {major} and none was found (looked in "
                     f"JAVA_HOME, {JVM_ROOT} and the PATH); install a JDK {major}")


def _java_major(home: Path) -> int | None:
    try:
        text = (home / "release").read_text()
    except OSError:
        return None
    found = re.search(r'JAVA_VERSION="(\d+)', text)
    return int(found.group(1)) if found else None


def build(version: Neo4jVersion, *, quiet: bool = True) -> None:
    """Resolve the version's jars from Maven Central and build the launcher (idempotent)."""
    if version.built:
        return
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError("the embedded Neo4j is built with Maven and `mvn` is not on the PATH; "
                         "install Maven (apt-get install maven)")
    jdk = find_java(version.java)
    args = [mvn, "-B", *(["-q"] if quiet else []), "-f", str(PROJECT_DIR / "pom.xml"),
            f"-Dneo4j.version={version.version}", f"-Djava.release={version.java}", "package"]
    done = subprocess.run(args, env=child_environment(JAVA_HOME=str(jdk)),
                          capture_output=quiet, text=True, check=False)
    if done.returncode != 0:
        tail = (done.stdout or "").strip().splitlines()[-5:] if quiet else []
        raise StackError(f"building the embedded Neo4j {version.version} failed (mvn exit "
                         f"{done.returncode}): {' | '.join(tail) or 'see the output above'}")


def parse_memory(text: str) -> int:
    """'512m' -> bytes; the JVM's own notation."""
    found = MEMORY_SIZE.match(text.strip())
    if not found:
        raise StackError(f"not a memory size: {text!r} (use e.g. 512m or 2g)")
    power = " kmg".index((found.group(2) or " ").lower())
    return int(found.group(1)) * int(1024**power)


@dataclass(frozen=True)
class Neo4jStatus:
    running: bool
    pid: int | None
    port: int
    data_dir: Path
    version: str
    already_running: bool = False

    @property
    def bolt_url(self) -> str:
        return f"bolt://{HOST}:{self.port}"


class EmbeddedNeo4j:
    """Start, stop and inspect the embedded Neo4j. `up()` is idempotent; `down()` leaves no
    process behind."""

    def __init__(self, data_dir: Path, port: int, *, version: str | None = None,
                 heap: str = "2g", page_cache: str = "1g", tx_memory: str = "1g",
                 password: SecretStr | None = None) -> None:
        self.data_dir = data_dir.absolute()
        self.port = port
        self.version = version_named(version)
        self.heap, self.page_cache, self.tx_memory = heap, page_cache, tx_memory
        self._password = password
        self.pid_file = self.data_dir / "neo4j.pid"
        self.log_file = self.data_dir / "neo4j.log"
        self._password_file = self.data_dir / "password"
        self._lock_file = self.data_dir / "neo4j.lock"

    @classmethod
    def from_settings(cls, settings: Settings) -> "EmbeddedNeo4j":
        """Beside the embedded broker: its data in `<stack_dir>/neo4j`."""
        return cls(settings.stack_dir / "neo4j", settings.stack_neo4j_port,
                   version=settings.stack_neo4j_version, heap=settings.stack_neo4j_heap,
                   page_cache=settings.stack_neo4j_page_cache,
                   password=settings.neo4j_password)

    # -- what clients need --------------------------------------------------------------------

    @property
    def password(self) -> SecretStr:
        """The configured password, or the one generated at the first start and kept here."""
        if self._password is not None:
            return self._password
        with contextlib.suppress(FileNotFoundError):
            return SecretStr(self._password_file.read_text().strip())
        self.data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(18))
        return SecretStr(self._password_file.read_text().strip())

    @property
    def target(self) -> GraphTarget:
        return GraphTarget("neo4j", "bolt", HOST, self.port, None, "neo4j", self.password)

    # -- the demo's database ---------------------------------------------------------------

    def holds_only_demo(self, backend: GraphBackend) -> bool:
        """Empty, or marked by an earlier `kgmigrate demo` (which may replace it)."""
        return demo.holds_only_demo(backend)

    def empty(self, backend: GraphBackend) -> None:
        """Delete every node, index and constraint of this embedded server's database."""
        from kgmigrate.graph.neo4j import Neo4jBackend

        if not isinstance(backend, Neo4jBackend) or backend.target.port != self.port:
            raise StackError("only the embedded Neo4j's own database is ever emptied")
        backend.run_autocommit("MATCH (n) CALL (n) { DETACH DELETE n } "
                               "IN TRANSACTIONS OF 20000 ROWS")
        for row in backend.read("SHOW CONSTRAINTS YIELD name").records:
            backend.write(f"DROP CONSTRAINT {ident.quote(row['name'], ident.Kind.INDEX)}")
        for row in backend.read("SHOW INDEXES YIELD name, type WHERE type <> 'LOOKUP'").records:
            backend.write(f"DROP INDEX {ident.quote(row['name'], ident.Kind.INDEX)}")

    def mark_demo(self, backend: GraphBackend) -> None:
        demo.mark_demo(backend)

    # -- lifecycle ----------------------------------------------------------------------------

    def up(self) -> Neo4jStatus:
        with self._locked():
            pid = self._live_pid()
            if pid is not None:
                if self._answers():
                    return self._status(pid, already_running=True)
                raise StackError(f"the embedded Neo4j (pid {pid}) runs but does not answer on "
                                 f"{HOST}:{self.port}; see {self.log_file}")
            if not self.version.built:
                raise StackError(f"the embedded Neo4j {self.version.version} is not built; run "
                                 f"`make install` (or `kgmigrate stack build --graph neo4j`)")
            java = find_java(self.version.java) / "bin" / "java"
            self._check_port_free()
            password = self.password.get_secret_value()
            args = [str(java), f"-Xms{self.heap}", f"-Xmx{self.heap}",
                    "-XX:+ExitOnOutOfMemoryError", "-XX:+UseG1GC",
                    "-cp", f"{self.version.lib_dir}/*", _MAIN_CLASS,
                    str(self.data_dir / "home"), str(self.port),
                    str(parse_memory(self.page_cache)), str(parse_memory(self.tx_memory))]
            with self.log_file.open("ab") as log:
                process = subprocess.Popen(
                    args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    env=child_environment(KGMIGRATE_NEO4J_PASSWORD=password),
                    start_new_session=True)
            self.pid_file.write_text(f"{process.pid} {self.port} {self.version.version}\n")
            self._wait_ready(process)
            return self._status(process.pid)

    def down(self) -> Neo4jStatus:
        """SIGTERM: Neo4j checkpoints and closes its store; SIGKILL only after a minute."""
        with self._locked():
            pid = self._live_pid()
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
                if not wait_exit(pid, _STOP_TIMEOUT_S):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                    wait_exit(pid, 10)
            self.pid_file.unlink(missing_ok=True)
            return Neo4jStatus(False, None, self.port, self.data_dir, self.version.version)

    def kill(self) -> None:
        """SIGKILL, no shutdown: what a crash or an OOM killer does (for fault tests)."""
        pid = self._live_pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            wait_exit(pid, 30)
        self.pid_file.unlink(missing_ok=True)

    def status(self) -> Neo4jStatus:
        pid = self._live_pid()
        if pid is None or not self._answers():
            return Neo4jStatus(False, pid, self.port, self.data_dir, self.version.version)
        return self._status(pid)

    def ensure_up(self) -> Neo4jStatus:
        status = self.status()
        return status if status.running else self.up()

    # -- internals ----------------------------------------------------------------------------

    def _locked(self) -> contextlib.AbstractContextManager[None]:
        return locked(self._lock_file)

    def _live_pid(self) -> int | None:
        return live_pid(self.pid_file, _MAIN_CLASS.encode())

    def _answers(self) -> bool:
        """A Bolt login with the password succeeds."""
        from neo4j import GraphDatabase
        from neo4j import exceptions as neo4j_errors

        try:
            with GraphDatabase.driver(
                f"bolt://{HOST}:{self.port}",
                auth=("neo4j", self.password.get_secret_value()),
                connection_timeout=2.0, max_transaction_retry_time=0.0,
                warn_notification_severity="OFF",
            ) as driver:
                driver.verify_connectivity()
            return True
        except (neo4j_errors.DriverError, neo4j_errors.Neo4jError, OSError):
            return False

    def _check_port_free(self, timeout_s: float = 30.0) -> None:
        """Free now, or within `timeout_s`: right after a server was killed, its accepted
        connections linger (closing) until the clients notice, and hold the port a while."""
        deadline = time.monotonic() + timeout_s
        while True:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    sock.bind((HOST, self.port))
                    return
                except OSError:
                    if time.monotonic() > deadline:
                        raise StackError(f"port {self.port} on {HOST} is taken by another "
                                         "process; stop it or set KGMIGRATE_STACK_NEO4J_PORT"
                                         ) from None
            time.sleep(0.2)

    def _wait_ready(self, process: "subprocess.Popen[bytes]") -> None:
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            if process.poll() is not None:
                self.pid_file.unlink(missing_ok=True)
                raise StackError(f"the embedded Neo4j exited at start (code "
                                 f"{process.returncode}): {self._log_tail()}")
            if self._answers():
                return
            time.sleep(0.2)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        self.pid_file.unlink(missing_ok=True)
        raise StackError(f"the embedded Neo4j did not answer within {_START_TIMEOUT_S:.0f}s: "
                         f"{self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            lines = self.log_file.read_text(errors="replace").strip().splitlines()
        except FileNotFoundError:
            return "(no log)"
        errors = [ln for ln in lines if "ERROR" in ln or "Exception" in ln] or lines
        return errors[-1].strip() if errors else "(empty log)"

    def _status(self, pid: int, *, already_running: bool = False) -> Neo4jStatus:
        return Neo4jStatus(True, pid, self.port, self.data_dir, self.version.version,
                           already_running)

