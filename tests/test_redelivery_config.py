"""How soon a task whose worker died comes back is a configuration of the broker transport:
the bound kgmigrate states (and docs/performance.md repeats) follows from it."""

from kgmigrate.runtime.app import redelivery_bound_s, sender


def test_a_dead_workers_task_is_swept_back_every_10_s_and_the_bound_is_stated() -> None:
    # Given the app kgmigrate configures, with a 600 s visibility timeout (the default)
    app = sender("redis://127.0.0.1:1/0", "redis://127.0.0.1:1/1")
    options = app.conf.broker_transport_options
    # Then kombu sweeps for expired tasks every 10 s (not its default 10 x 10 s), and a sweep
    # mutex left by a dead worker expires after 60 s (not 300 s)
    assert options["visibility_timeout"] == 600
    assert (options["unacked_restore_interval"], options["unacked_restore_throttle"]) == (10, 1)
    assert options["unacked_mutex_expire"] == 60
    # and the stated bound is the sum: 11 min 10 s by default, 30 s with the tests' 10 s timeout
    assert redelivery_bound_s(600) == 670
    assert redelivery_bound_s(10) == 30
    app.close()
