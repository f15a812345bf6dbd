"""`--local-workers N`: worker processes started for the duration of one command.

The no-setup path: each is a real `kgmigrate worker` process serving both queues, given the
resolved endpoints in its environment, stopped with a warm shutdown afterwards.
"""

import os
import signal
import subprocess
import sys
from pathlib import Path
from types import TracebackType

from kgmigrate.connect import Endpoints
from kgmigrate.runtime.settings import child_environment


class LocalWorkers:
    def __init__(self, count: int, endpoints: Endpoints, *, log_dir: Path,
                 concurrency: int = 1) -> None:
        self.count, self.endpoints, self.log_dir = count, endpoints, log_dir
        self.concurrency = concurrency
        self.processes: list[subprocess.Popen[bytes]] = []

    def environment(self) -> dict[str, str]:
        graph = self.endpoints.graph
        password = graph.password.get_secret_value() if graph.password else None
        auth = f":{password}@" if password and graph.backend == "falkordb" else ""
        url = f"{graph.scheme}://{auth}{graph.host}:{graph.port}/{graph.name or ''}"
        env = child_environment(
            KGMIGRATE_GRAPH_URL=url,
            KGMIGRATE_BROKER_URL=self.endpoints.broker_url.get_secret_value(),
            KGMIGRATE_RESULT_BACKEND=self.endpoints.result_backend.get_secret_value())
        if graph.backend == "neo4j":
            if graph.username:
                env["KGMIGRATE_NEO4J_USER"] = graph.username
            if password:
                env["KGMIGRATE_NEO4J_PASSWORD"] = password
        return env

    def __enter__(self) -> "LocalWorkers":
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = self.environment()
        for i in range(self.count):
            log = (self.log_dir / f"worker-{i + 1}.log").open("ab")
            self.processes.append(subprocess.Popen(
                [sys.executable, "-m", "kgmigrate.cli", "worker",
                 "--concurrency", str(self.concurrency)],
                env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True))
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def stop(self, timeout_s: float = 30) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)  # warm shutdown: finish the current task
        for process in self.processes:
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
