"""Run ids that cannot collide, and the run status machine (no server)."""

import itertools
import time
from datetime import UTC, datetime

import pytest

from kgmigrate.cli.common import throttled
from kgmigrate.model.ids import id_time_ms, is_id, new_id
from kgmigrate.model.records import RunRecord, StepRecord
from kgmigrate.model.status import (
    ALLOWED,
    MigrationStatus,
    StatusTransitionError,
    check_transition,
)
from kgmigrate.model.throttle import Throttle
from kgmigrate.monitoring.report import failed_at


def test_ids_are_unique_even_within_one_millisecond() -> None:
    ids = {new_id("run", now_ms=1_700_000_000_000) for _ in range(100_000)}
    assert len(ids) == 100_000


def test_ids_sort_by_creation_time_and_carry_it() -> None:
    earlier, later = new_id("run", now_ms=1_000), new_id("run", now_ms=2_000)
    assert earlier < later
    now = int(time.time() * 1000)
    assert abs(id_time_ms(new_id("batch")) - now) < 5_000
    assert id_time_ms(new_id("run", now_ms=1_234_567)) == 1_234_567


def test_ids_are_recognised_by_prefix_and_shape() -> None:
    run = new_id("run")
    assert is_id(run, "run")
    assert not is_id(run, "step")
    assert not is_id("run_" + "I" * 26, "run")  # I is not in Crockford base32
    assert len(run) == len("run_") + 26


@pytest.mark.parametrize("prefix", ["", "Run", "r-n", "x" * 17])
def test_bad_prefixes_are_refused(prefix: str) -> None:
    with pytest.raises(ValueError, match="prefix"):
        new_id(prefix)


def test_the_happy_path_and_resume_and_rollback_are_allowed() -> None:
    s = MigrationStatus
    path = [s.PENDING, s.IN_PROGRESS, s.VALIDATING, s.IN_PROGRESS, s.VALIDATING, s.FAILED,
            s.IN_PROGRESS, s.FAILED, s.ROLLING_BACK, s.ROLLBACK_BLOCKED, s.ROLLING_BACK,
            s.ROLLED_BACK]
    for current, new in itertools.pairwise(path):
        assert check_transition(current, new) is new


def test_an_operator_may_pause_continue_and_cancel_a_running_run() -> None:
    s = MigrationStatus
    for path in ([s.IN_PROGRESS, s.PAUSED, s.IN_PROGRESS, s.VALIDATING, s.PAUSED, s.ROLLING_BACK],
                 [s.IN_PROGRESS, s.PAUSED, s.FAILED, s.IN_PROGRESS],
                 [s.VALIDATING, s.PAUSED, s.ABANDONED]):
        for current, new in itertools.pairwise(path):
            assert check_transition(current, new) is new


@pytest.mark.parametrize(("current", "new"), [
    (MigrationStatus.COMPLETED, MigrationStatus.FAILED),
    (MigrationStatus.ROLLED_BACK, MigrationStatus.COMPLETED),
    (MigrationStatus.PENDING, MigrationStatus.COMPLETED),
    (MigrationStatus.IN_PROGRESS, MigrationStatus.ROLLED_BACK),
    (MigrationStatus.FAILED, MigrationStatus.ROLLED_BACK),
    (MigrationStatus.ROLLING_BACK, MigrationStatus.IN_PROGRESS),
    (MigrationStatus.ROLLBACK_BLOCKED, MigrationStatus.IN_PROGRESS),
    (MigrationStatus.PENDING, MigrationStatus.PAUSED),  # paused only once it runs
    (MigrationStatus.PAUSED, MigrationStatus.COMPLETED),  # a paused run continues first
    (MigrationStatus.ROLLING_BACK, MigrationStatus.PAUSED),  # a rollback is not paused
])
def test_impossible_transitions_are_refused_with_what_is_allowed(
        current: MigrationStatus, new: MigrationStatus) -> None:
    with pytest.raises(StatusTransitionError, match=f"is {current} cannot become {new}"):
        check_transition(current, new)


def test_ticket_values_and_final_states() -> None:
    # the ticket's values, then kgmigrate's own (a rollback in its stages, an abandoned run,
    # a run an operator paused)
    assert [s.value for s in MigrationStatus] == [
        "pending", "in_progress", "validating", "completed", "failed", "rolled_back",
        "rolling_back", "rollback_blocked", "abandoned", "paused"]
    assert {s for s in MigrationStatus if s.is_final} == {
        MigrationStatus.COMPLETED, MigrationStatus.ROLLED_BACK, MigrationStatus.ABANDONED}
    assert set(ALLOWED) == set(MigrationStatus)


def test_a_rollback_error_follows_the_runs_own_failure_and_replaces_an_earlier_stop() -> None:
    run = RunRecord(id="r", status=MigrationStatus.ROLLBACK_BLOCKED, migrations=["V1"],
                    created_at=datetime(2026, 1, 1, tzinfo=UTC), created_by="t", host="h",
                    history=[], error_log="step 2: boom")
    first = run.with_rollback_error("3 conflicts")
    assert first == "step 2: boom || rollback: 3 conflicts"
    again = run.model_copy(update={"error_log": first}).with_rollback_error("a crash")
    assert again == "step 2: boom || rollback: a crash"
    # a run whose log holds only a rollback's message (or nothing) gets the new message alone
    assert run.model_copy(update={"error_log": "rollback left 2"}).with_rollback_error("x") == "x"
    assert run.model_copy(update={"error_log": None}).with_rollback_error("x") == "x"


def test_a_step_ends_its_migration_when_the_next_step_is_another_migrations_or_none() -> None:
    def step(order: int, version: str) -> StepRecord:
        return StepRecord(id=f"s{order}", run_id="r", order=order, version=version,
                          description="", operation="cypher", batched=False,
                          status=MigrationStatus.PENDING)

    steps = [step(1, "V1"), step(2, "V1"), step(3, "V2")]
    run = RunRecord(id="r", status=MigrationStatus.IN_PROGRESS, migrations=["V1", "V2"],
                    created_at=datetime(2026, 1, 1, tzinfo=UTC), created_by="t", host="h",
                    history=[], steps=steps)
    assert [run.ends_its_migration(s) for s in steps] == [False, True, True]
    assert [run.next_step(s) for s in steps] == [steps[1], steps[2], None]


def test_the_throttle_line_says_why_a_batch_waits_only_while_the_run_has_workers() -> None:
    # Given a running run whose last batch noted that it waits for its rate turn
    run = RunRecord(id="r", status=MigrationStatus.IN_PROGRESS, migrations=["V1"],
                    created_at=datetime(2026, 1, 1, tzinfo=UTC), created_by="t", host="h",
                    history=[], throttle=Throttle(max_rate=1000), throttled_s=5.5,
                    throttle_note="rate limit, at most 1000 entities/s")
    # Then with workers the line says why a batch waits now
    assert throttled(run) == ("throttle: at most 1000 entities/s; waited 5.5s in all; "
                              "waiting now: rate limit, at most 1000 entities/s")
    # and once its workers are gone (a killed worker left that note) it does not
    assert throttled(run, live=False) == "throttle: at most 1000 entities/s; waited 5.5s in all"
    # nor once the run has ended
    ended = run.model_copy(update={"status": MigrationStatus.COMPLETED})
    assert "waiting now" not in (throttled(ended) or "")


def test_a_run_reverted_after_it_completed_says_so_and_is_no_failure() -> None:
    history = ["pending@2026-01-01T00:00:00+00:00", "in_progress@2026-01-01T00:00:01+00:00",
               "validating@2026-01-01T00:00:02+00:00", "completed@2026-01-01T00:00:03+00:00",
               "rolling_back@2026-01-02T00:00:00+00:00"]
    blocked = RunRecord(id="r", status=MigrationStatus.ROLLBACK_BLOCKED, migrations=["V1"],
                        created_at=datetime(2026, 1, 1, tzinfo=UTC), created_by="t", host="h",
                        history=[*history, "rollback_blocked@2026-01-02T00:00:01+00:00"],
                        error_log="rollback left 1 conflicts")
    assert blocked.reverts and blocked.model_dump()["reverts"] is True
    assert failed_at(blocked) is None  # an operator's revert, not a failure
    # a completed run is not (yet) reverted; a rollback of a failed run is no revert
    assert not blocked.model_copy(update={"status": MigrationStatus.COMPLETED,
                                          "history": history[:4]}).reverts
    rolled = blocked.model_copy(update={"history": [history[0], history[1],
                                                    "rolling_back@2026-01-01T00:00:02+00:00"]})
    assert not rolled.reverts and failed_at(rolled) is not None
