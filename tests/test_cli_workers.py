"""A run that cannot progress says so (issue 17, items 4 and 5), through the real command on
the real stack: `upgrade` with no worker consuming the queues printed nothing, its run stayed
`pending` holding the migration lock, and the next command was refused by that lock. Now the
verbs that start a run ask the workers first and refuse in one line, before recording anything
or taking the lock; a run queued anyway, or whose workers all died, is shown as waiting for
workers by `status`, `status --watch` and the command that follows it."""

import json
import os
import subprocess
import threading
from pathlib import Path
from typing import IO

from kgmigrate.graph.base import GraphBackend
from kgmigrate.ledger import Ledger
from kgmigrate.ledger.lock import MigrationLock
from kgmigrate.model.records import MigrationStatus
from tests.conftest import Execution, wait_until
from tests.test_cli import KGM, run

FLAG = '''from kgmigrate import Migration, ops

migration = Migration(author="test", batch_size=40, steps=[
    ops.batched("Item", "SET e.flag = true", down="REMOVE e.flag"),
])
'''
COUNT_THEN_MARK = '''from kgmigrate import Migration, ops

migration = Migration(author="test", batch_size=100, steps=[
    ops.batched("Item", "SET e.c = coalesce(e.c, 0) + 1"),
    ops.batched("Item", "SET e.marked = true"),
])
'''
BOTH = "kgm.batches or kgm.control"


def items(graph: GraphBackend, count: int) -> None:
    graph.write("UNWIND range(1, $n) AS i CREATE (:Item {i: i})", {"n": count})


def refusal(execution: Execution, queues: str) -> str:
    """What a verb that would start a run says when no worker serves `queues`."""
    return (f"kgmigrate: error: no worker consumes {queues} (broker "
            f"{execution.env['KGMIGRATE_BROKER_URL']}): start one with `kgmigrate worker`, or "
            "pass --local-workers N; nothing was recorded and the migration lock was not "
            "taken (--allow-no-workers queues the run to wait for one)\n")


def waiting_hint(execution: Execution, graph: GraphBackend, run_id: str) -> str:
    """The line that says the run waits for workers, with the lease its lock has now."""
    lock = MigrationLock(graph).info()
    assert lock is not None and lock.run_id == run_id
    return (f"waiting for workers: none consumes {BOTH} (broker "
            f"{execution.env['KGMIGRATE_BROKER_URL']}); start one with `kgmigrate worker`. "
            f"Meanwhile run {run_id} holds the migration lock (lease until "
            f"{lock.lease_until:%H:%M:%S} UTC); to give it up instead: "
            f"`kgmigrate abandon {run_id} --reason ...`")


def only_run(graph: GraphBackend) -> str:
    [(run_id, _)] = Ledger(graph).runs_in(list(MigrationStatus))
    return run_id


def status_json(execution: Execution, tmp_path: Path, *args: str) -> dict[str, object]:
    shown = run("status", *args, "--json", env=execution.env, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    return dict(json.loads(shown.stdout))


class Following:
    """A kgmigrate command left running (one that follows a run), its output read as it
    comes, line by line."""

    def __init__(self, execution: Execution, cwd: Path, *args: str) -> None:
        self.process = subprocess.Popen([*KGM, *args], env={**os.environ, **execution.env},
                                        cwd=cwd, text=True, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE)
        self.out: list[str] = []
        self.err: list[str] = []
        assert self.process.stdout is not None and self.process.stderr is not None
        self._readers = [threading.Thread(target=_read, args=(stream, lines), daemon=True)
                         for stream, lines in ((self.process.stdout, self.out),
                                               (self.process.stderr, self.err))]
        for reader in self._readers:
            reader.start()

    def said(self, text: str) -> bool:
        return any(text in line for line in list(self.err))

    def finish(self, timeout_s: float) -> int:
        code = self.process.wait(timeout=timeout_s)
        for reader in self._readers:
            reader.join(timeout=30)
        return code

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def _read(stream: IO[str], lines: list[str]) -> None:
    for line in stream:
        lines.append(line.rstrip("\n"))


def test_an_upgrade_with_no_worker_is_refused_in_one_line_and_holds_nothing(
        execution: Execution, graph: GraphBackend, tmp_path: Path) -> None:
    """Issue 17, item 4: `upgrade` with no worker printed nothing, and its pending run held
    the lock, so the next command failed with "the migration lock is held by ..."."""
    # Given a pending migration and no worker on the broker
    items(graph, 100)
    execution.write_migration("V0001__flag.py", FLAG)
    # When it is upgraded
    refused = run("upgrade", env=execution.env, cwd=tmp_path)
    # Then one line names the queues no worker consumes and the command that starts one
    assert (refused.returncode, refused.stderr) == (1, refusal(execution, BOTH))
    # and no run was recorded, and the lock is free
    assert Ledger(graph).runs_in(list(MigrationStatus)) == []
    assert MigrationLock(graph).info() is None
    # Given a worker that consumes the batch queue only
    execution.start_worker(queues="kgm.batches")
    execution.wait_ready(1)
    # Then the refusal names the control queue alone
    refused = run("upgrade", "--json", env=execution.env, cwd=tmp_path)
    assert (refused.returncode, refused.stdout) == (1, "")
    assert refused.stderr.splitlines()[1:] == [refusal(execution, "kgm.control").rstrip()]
    assert Ledger(graph).runs_in(list(MigrationStatus)) == []
    # When a control worker starts too, the next upgrade is neither refused nor blocked
    execution.start_worker(queues="kgm.control")
    execution.wait_ready(2)
    done = run("upgrade", env=execution.env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == f"run {only_run(graph)}: completed  upgrade"
    assert "waiting for workers" not in done.stderr
    assert graph.read("MATCH (e:Item) WHERE e.flag RETURN count(e) AS n").value("n") == 100


def test_a_run_queued_without_workers_says_it_waits_and_runs_once_one_starts(
        execution: Execution, graph: GraphBackend, tmp_path: Path) -> None:
    """Issue 17, item 4: `status --watch` shows when a run waits for workers; a run queued on
    purpose before any worker runs says so, and how to release its lock."""
    # Given no worker, and a run queued anyway
    items(graph, 100)
    execution.write_migration("V0001__flag.py", FLAG)
    queued = run("upgrade", "--allow-no-workers", "--no-wait", env=execution.env, cwd=tmp_path)
    assert queued.returncode == 0, queued.stderr
    run_id = only_run(graph)
    hint = waiting_hint(execution, graph, run_id)
    # Then the command says it is queued, and that it waits for workers, in one line
    assert queued.stdout.splitlines()[-1] == (
        f"run {run_id} enqueued; follow it with `kgmigrate status {run_id} --watch`")
    assert queued.stderr == hint + "\n"
    # and `status` says so below the pending run, in text and in JSON
    shown = run("status", env=execution.env, cwd=tmp_path).stdout.splitlines()
    assert shown[1] == f"run {run_id}: pending  upgrade  migrations V0001"
    assert shown[-1] == "  " + hint
    waiting = status_json(execution, tmp_path)["waiting_for_workers"]
    assert waiting == {"broker": execution.env["KGMIGRATE_BROKER_URL"],
                       "missing_queues": ["kgm.batches", "kgm.control"], "serving": {},
                       "error": None, "message": hint}
    # and so does `status --watch`, at once
    watch = Following(execution, tmp_path, "status", run_id, "--watch")
    try:
        wait_until(lambda: watch.said(hint), "`status --watch` saying the run waits", 120)
        # When a worker starts
        execution.start_worker()
        # Then the run completes, the watch ends with it, and the hint is gone
        assert watch.finish(timeout_s=240) == 0, watch.err
    finally:
        watch.stop()
    assert f"run {run_id}: completed  upgrade  migrations V0001" in watch.out
    assert [line for line in watch.err if "waiting for workers" in line] == [hint]
    shown = run("status", env=execution.env, cwd=tmp_path).stdout
    assert f"run {run_id}: completed" in shown and "waiting for workers" not in shown
    assert status_json(execution, tmp_path)["waiting_for_workers"] is None
    assert MigrationLock(graph).info() is None


def test_a_run_whose_workers_all_died_says_it_waits_for_workers(
        execution: Execution, graph: GraphBackend, tmp_path: Path) -> None:
    """Issue 17, item 5: a run whose steps are pending while every worker died shows the same
    hint, in the command that follows it and in `status`; and the way out it names works."""
    # Given a run followed by `upgrade`, held before its step 2 by its only worker
    items(graph, 400)
    execution.write_migration("V0001__count_then_mark.py", COUNT_THEN_MARK)
    gate = tmp_path / "gate"
    execution.env.update(KGMIGRATE_HOOKS="tests.gate", KGM_GATE_STEP="2", KGM_GATE=str(gate),
                         KGMIGRATE_WORKER_WAIT_S="2")
    worker = execution.start_worker()
    execution.wait_ready(1)
    upgrade = Following(execution, tmp_path, "upgrade")
    try:
        wait_until(lambda: Path(f"{gate}.waiting").exists(), "the run held before step 2",
                   timeout_s=240)
        run_id = only_run(graph)
        # while its worker lives, nobody says the run waits for workers
        alive = run("status", env=execution.env, cwd=tmp_path)
        assert f"run {run_id}: in_progress" in alive.stdout, alive.stderr
        assert "waiting for workers" not in alive.stdout
        # When every worker dies (SIGKILL: no goodbye)
        execution.kill(worker)
        # Then the following command says, once it has seen no progress for
        # KGMIGRATE_WORKER_WAIT_S, that the run waits for workers
        wait_until(lambda: upgrade.said("waiting for workers"), "the follower's hint", 120)
        hint = waiting_hint(execution, graph, run_id)
        assert [line for line in upgrade.err if "waiting for workers" in line] == [hint]
        # and so does `status`, in text and JSON
        shown = run("status", env=execution.env, cwd=tmp_path).stdout.splitlines()
        assert shown[1] == f"run {run_id}: in_progress  upgrade  migrations V0001"
        assert shown[-1] == "  " + hint
        waiting = status_json(execution, tmp_path, run_id)["waiting_for_workers"]
        assert isinstance(waiting, dict) and waiting["message"] == hint
        # and `resume` is refused the same way, taking nothing
        resumed = run("resume", run_id, env=execution.env, cwd=tmp_path)
        assert (resumed.returncode, resumed.stderr) == (1, refusal(execution, BOTH))
        # When the user gives the run up as the hint says (its lease is still live)
        given_up = run("abandon", run_id, "--reason", "its workers are gone", "--yes",
                       env=execution.env, cwd=tmp_path)
        # Then it is abandoned, the follower ends with it, and the lock is free
        assert given_up.returncode == 0, given_up.stderr
        assert upgrade.finish(timeout_s=120) == 1
    finally:
        upgrade.stop()
    assert f"run {run_id}: abandoned  upgrade" in upgrade.out
    assert MigrationLock(graph).info() is None
    assert Ledger(graph).runs_in([MigrationStatus.ABANDONED]) == [
        (run_id, MigrationStatus.ABANDONED)]


def test_the_watch_tells_once_and_never_about_a_run_that_moves() -> None:
    """The follower's rule, without servers: a run that has not moved for the bound makes it
    ask the workers; a missing queue is told once (again only when what is missing changes),
    a run that moves or has ended is not asked about."""
    from datetime import UTC, datetime

    from kgmigrate.model.records import RunRecord, StepRecord
    from kgmigrate.presence import Workers, WorkerWatch

    none = Workers("redis://b/1")
    control_only = Workers("redis://b/1", {"kgm.control": ("w1@h",)})
    both = Workers("redis://b/1", {"kgm.control": ("w1@h",), "kgm.batches": ("w2@h",)})
    answers = [none, none, control_only, both, none]
    asked: list[Workers] = []

    def ask() -> Workers:
        asked.append(answers[len(asked)])
        return asked[-1]

    def record(status: MigrationStatus, done: int) -> RunRecord:
        step = StepRecord(id="s", run_id="r", order=1, version="V0001", description="d",
                          operation="batched", batched=True, status=status,
                          batches_total=4, batches_done=done)
        return RunRecord(id="r", status=status, migrations=["V0001"],
                         created_at=datetime.now(UTC), created_by="t", host="h",
                         history=[f"{status}@x"], steps=[step])

    now = [0.0]
    watch = WorkerWatch(ask, lambda run, w: " or ".join(w.missing), quiet_s=30,
                        clock=lambda: now[0])
    still = record(MigrationStatus.IN_PROGRESS, 1)
    assert watch.observe(still) is None  # not asked before the bound
    now[0] = 29.9
    assert watch.observe(still) is None and asked == []
    now[0] = 30.0
    assert watch.observe(still) == "kgm.batches or kgm.control"
    now[0] = 60.0
    assert watch.observe(still) is None  # the same again: told already
    now[0] = 90.0
    assert watch.observe(still) == "kgm.batches"  # a control worker came: what is missing
    now[0] = 120.0
    assert watch.observe(still) is None  # both served: nothing to say
    assert len(asked) == 4
    now[0] = 200.0
    assert watch.observe(record(MigrationStatus.IN_PROGRESS, 2)) is None  # it moved: not asked
    assert watch.observe(record(MigrationStatus.COMPLETED, 4)) is None  # ended: not asked
    assert len(asked) == 4
    at_once = WorkerWatch(lambda: none, lambda run, w: "told", quiet_s=3600, at_once=True)
    assert at_once.observe(still) == "told"
    already = WorkerWatch(lambda: none, lambda run, w: "told", quiet_s=3600, at_once=True,
                          told=none)
    assert already.observe(still) is None
