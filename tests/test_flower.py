"""Flower on kgmigrate's Celery app: it refuses to start without credentials, keeps out a
browser without them, and, logged in from headless Chromium during a real run, shows that run's
batch tasks with readable arguments and their counters as results."""

import base64
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from kgmigrate.graph.base import GraphBackend
from kgmigrate.models import MigrationStatus
from tests.conftest import Execution, free_port
from tests.test_execution import start, wait_for

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
USER, PASSWORD = "ops", "flower-test-password"
SLOW_STEPS = """
from kgmigrate import Migration, ops

migration = Migration(author="test", batch_size=500, steps=[
    ops.add_property("Item", "status", "new"),
    ops.python_transform("Item", "status", "tests.transforms:burn"),
])
"""


def kgmigrate(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kgmigrate.cli", *args], env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def get(url: str, auth: tuple[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url)
    if auth:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""
    except urllib.error.URLError:  # not listening yet
        return 0, b""


@pytest.fixture
def flower(execution: Execution) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, **execution.env, "KGMIGRATE_FLOWER_USER": USER,
           "KGMIGRATE_FLOWER_PASSWORD": PASSWORD}
    log = (execution.logs / "flower.log").open("ab")
    process = subprocess.Popen([sys.executable, "-m", "kgmigrate.cli", "flower", "--port",
                                str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while get(f"{url}/healthcheck")[0] not in (200, 401):
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            raise AssertionError((execution.logs / "flower.log").read_text())
        time.sleep(0.3)
    yield url
    process.terminate()
    process.wait(timeout=20)


def test_flower_refuses_to_start_without_credentials(execution: Execution) -> None:
    env = {k: v for k, v in {**os.environ, **execution.env}.items()
           if not k.startswith("KGMIGRATE_FLOWER_")}
    refused = kgmigrate("flower", env=env)
    assert refused.returncode == 1
    assert "Flower needs basic auth: set KGMIGRATE_FLOWER_USER" in refused.stderr
    exposed = kgmigrate("flower", "--insecure-local", "--address", "0.0.0.0", env=env)
    assert exposed.returncode == 1 and "loopback only" in exposed.stderr
    assert "Traceback" not in refused.stderr + exposed.stderr


def browser(profile: Path) -> webdriver.Chrome:
    for needed in (CHROMIUM, CHROMEDRIVER):
        assert needed.exists(), f"{needed} is missing: `make install` installs Debian's " \
                                "chromium and chromium-driver"
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 "--window-size=1600,1000", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)),
                            options=options)


def test_a_browser_logged_into_flower_sees_the_batch_tasks_of_a_real_run(
        execution: Execution, graph: GraphBackend, flower: str, output_dir: Path,
        tmp_path: Path) -> None:
    # Given Flower behind basic auth, and a run of two steps on two workers
    assert get(f"{flower}/tasks")[0] == 401
    assert get(f"{flower}/tasks", (USER, "wrong"))[0] == 401
    graph.write("UNWIND range(1, 12000) AS i CREATE (:Item {i: i})")
    execution.write_migration("V0001__slow.py", SLOW_STEPS)
    execution.start_worker()
    execution.start_worker()
    # Flower knows only the tasks whose events it receives: its health check answers before
    # its event consumer is connected, so wait until events from both workers have arrived
    _workers_seen_by_events(flower, 2)
    run_id = start(execution, graph)
    wait_for(graph, run_id, lambda r: r.steps[1].batches_done >= 2, timeout_s=120)
    # When a browser logs in while the run goes on
    driver = browser(tmp_path / "chromium")
    try:
        token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        driver.execute_cdp_cmd("Network.enable", {})
        driver.execute_cdp_cmd("Network.setExtraHTTPHeaders",
                               {"headers": {"Authorization": f"Basic {token}"}})
        driver.get(f"{flower}/tasks")
        deadline = time.monotonic() + 90
        loaded = time.monotonic()
        while "workers.apply_batch V0001 step 2" not in driver.page_source:
            assert time.monotonic() < deadline, driver.page_source[-3000:]
            time.sleep(1)
            if time.monotonic() - loaded > 10:  # the task table fills in by XHR: give it time
                driver.refresh()
                loaded = time.monotonic()
        # Then it lists the batch tasks by version and step, and finds the run's by its id
        # (Flower searches task arguments: another run id finds nothing, this one its tasks)
        search = driver.find_element(By.CSS_SELECTOR, "input[type=search]")
        search.send_keys("run_that_never_was")
        _settled(driver, lambda html: "No tasks match your search." in html)
        search.clear()
        search.send_keys(run_id)
        page = _settled(driver, lambda html: "No tasks match" not in html
                        and "workers.apply_batch V0001 step" in html)
        driver.save_screenshot(str(output_dir / "flower-tasks.png"))
        # and a task's own page shows its arguments and, once done, its counters
        run = _wait(graph, run_id)
        done = _batch_tasks_done(flower, run_id, sum(s.batches_total for s in run.steps))
        first_step = [t for t in done if t["name"] == "workers.apply_batch V0001 step 1"]
        driver.get(f"{flower}/task/{first_step[0]['uuid']}")
        detail = driver.page_source
        driver.save_screenshot(str(output_dir / "flower-task.png"))
    finally:
        driver.quit()
    assert page.count("workers.apply_batch V0001 step") >= 2
    # the batch's keys as a label: an id range on FalkorDB, a count of elementIds on Neo4j
    keys = "'keys': '[" if graph.dialect.name == "falkordb" else " keys'"
    assert run_id in detail and "properties_set" in detail and keys in detail
    assert (output_dir / "flower-tasks.png").stat().st_size > 20_000
    assert run.status is MigrationStatus.COMPLETED, run.error_log
    # And Flower's API gives each batch task's result with its counters
    assert sum(s.batches_total for s in run.steps) == 48
    assert len(done) == 48  # and no more: each batch ran as one task
    results = [_result(t["result"]) for t in done]
    assert {r["run_id"] for r in results} == {run_id}
    shown = sum(r["counters"].get("properties_set", 0) for r in results)
    assert shown == run.counters["properties_set"]  # Flower's results and the ledger agree
    if graph.dialect.name == "falkordb":  # 48 batches x (500 values + 9 ledger properties)
        assert shown == 48 * 509
    else:  # Neo4j counts the transform's REMOVE and SET of one property as two
        assert shown == 24 * (500 + 9) + 24 * (2 * 500 + 9)
    assert all("'version': 'V0001'" in t["kwargs"] for t in done)
    # And Flower's own Prometheus metrics stay available. Flower serves them without auth
    # (its design, for scrapers), so they carry no run ids, and one series per step
    # rather than per batch: task names are bounded
    status, body = get(f"{flower}/metrics")
    assert status == 200 and b'task="workers.apply_batch V0001 step 1"' in body
    assert run_id.encode() not in body


def _settled(driver: webdriver.Chrome, condition: Any, timeout_s: float = 30) -> str:
    """The page once `condition(html)` holds (the table re-renders after a search)."""
    deadline = time.monotonic() + timeout_s
    while not condition(html := driver.page_source):
        assert time.monotonic() < deadline, html[-3000:]
        time.sleep(0.5)
    return html


def _workers_seen_by_events(flower: str, count: int, timeout_s: float = 90) -> None:
    """Flower's worker list comes from the event stream (`/workers?json=1`), so `count` live
    workers there means Flower receives their task events."""
    deadline = time.monotonic() + timeout_s
    while True:
        status, body = get(f"{flower}/workers?json=1", (USER, PASSWORD))
        alive = [w for w in json.loads(body)["data"] if w.get("status")] if status == 200 else []
        if len(alive) >= count:
            return
        assert time.monotonic() < deadline, f"Flower sees events of {len(alive)} workers"
        time.sleep(0.5)


def _batch_tasks_done(flower: str, run_id: str, at_least: int,
                      timeout_s: float = 60) -> list[dict[str, Any]]:
    """The run's successful batch tasks as Flower's API lists them, once it lists `at_least`.

    Flower learns of a task from the workers' events, which arrive after the ledger already
    says the batch is done: waiting for the ledger's count, within a bound, is the state the
    test asserts on; a snapshot right after the run would race the last events."""
    deadline = time.monotonic() + timeout_s
    while True:
        status, body = get(f"{flower}/api/tasks?limit=1000", (USER, PASSWORD))
        assert status == 200
        done = [t for t in json.loads(body).values()
                if run_id in (t.get("args") or "") and t["state"] == "SUCCESS"
                and t["name"].startswith("workers.apply_batch V0001 ")]
        if len(done) >= at_least:
            return done
        if time.monotonic() > deadline:
            seen = [(t["name"], t["state"]) for t in json.loads(body).values()
                    if run_id in (t.get("args") or "")]
            raise AssertionError(f"Flower lists {len(done)} of {at_least} tasks done: {seen}")
        time.sleep(0.5)


def _result(text: str) -> dict[str, Any]:
    """Flower shows a result as its repr (a dict of the batch's JSON result)."""
    import ast

    return ast.literal_eval(text)  # type: ignore[no-any-return]


def _wait(graph: GraphBackend, run_id: str) -> Any:
    from kgmigrate import runs

    return runs.wait(graph, run_id, timeout_s=240)
