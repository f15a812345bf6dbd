"""What a user reads about a run, through the real command on the real stack: which way it
went (issue 17, item 3) and which of their entities failed a validation (item 6)."""

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from kgmigrate.engine.batch import validation_message
from kgmigrate.errors import KgmError
from kgmigrate.graph.base import GraphBackend
from kgmigrate.model.migration import Migration
from kgmigrate.model.records import Offending
from kgmigrate.model.registry import Registry
from kgmigrate.model.versions import MigrationFileError
from kgmigrate.ops import batched
from tests.conftest import Execution, free_port, wait_until
from tests.test_cli import KGM, run
from tests.test_monitoring import sample, scrape

RENAME = '''from kgmigrate import Migration, ops

migration = Migration(author="test", batch_size=40, steps=[
    ops.batched("Compound", "SET e.title = e.name REMOVE e.name", where="e.name IS NOT NULL",
                down="SET e.name = e.title REMOVE e.title", down_where="e.title IS NOT NULL"),
])
'''
FLAG = '''from kgmigrate import Migration, ops

migration = Migration(author="test", batch_size=40, steps=[
    ops.batched("Compound", "SET e.flag = true", down="REMOVE e.flag"),
])
'''


def compounds(graph: GraphBackend, count: int) -> None:
    graph.write("UNWIND $rows AS r CREATE (:Compound {i: r.i, cid: r.cid, name: r.name})",
                {"rows": [{"i": i, "cid": f"CMP{i:07d}", "name": f"compound {i}"}
                          for i in range(1, count + 1)]})


def latest(execution: Execution, tmp_path: Path) -> dict[str, object]:
    shown = run("status", "--json", env=execution.env, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    return dict(json.loads(shown.stdout))


def test_a_downgrade_says_so_in_status_metrics_report_and_prometheus(
        execution: Execution, graph: GraphBackend, tmp_path: Path) -> None:
    """Issue 17, item 3: a downgrade run read `run ...: completed  migrations V0005, V0002`
    in `status`, like an upgrade, and so did `metrics`, `report` and the exporter."""
    # Given two applied migrations, upgraded through the CLI
    compounds(graph, 100)
    execution.write_migration("V0001__rename.py", RENAME)
    execution.write_migration("V0002__flag.py", FLAG)
    upgraded = run("upgrade", "--local-workers", "1", env=execution.env, cwd=tmp_path)
    assert upgraded.returncode == 0, upgraded.stderr
    up_id = str(latest(execution, tmp_path)["id"])
    assert upgraded.stdout.splitlines()[-1] == f"run {up_id}: completed  upgrade"
    # When they are downgraded to base
    downgraded = run("downgrade", "base", "--local-workers", "1", env=execution.env,
                     cwd=tmp_path)
    assert downgraded.returncode == 0, downgraded.stderr
    shown = latest(execution, tmp_path)
    down_id = str(shown["id"])
    assert downgraded.stdout.splitlines()[-1] == f"run {down_id}: completed  downgrade"
    # Then `status` says which way each run went, in text and JSON
    assert (shown["direction"], shown["migrations"]) == ("down", ["V0002", "V0001"])
    status = run("status", env=execution.env, cwd=tmp_path).stdout.splitlines()
    assert status[1] == (f"run {down_id}: completed  downgrade  migrations V0002, V0001 "
                         "(target base)")
    status = run("status", up_id, env=execution.env, cwd=tmp_path).stdout.splitlines()
    assert status[1] == f"run {up_id}: completed  upgrade  migrations V0001, V0002"
    up_json = run("status", up_id, "--json", env=execution.env, cwd=tmp_path)
    assert json.loads(up_json.stdout)["direction"] == "up"
    # and so does `metrics`
    metrics = dict(line.split(None, 1) for line in run(
        "metrics", env=execution.env, cwd=tmp_path).stdout.splitlines()[1:])
    assert (metrics["status"], metrics["direction"]) == ("completed", "downgrade")
    assert metrics["migrations"] == "V0002, V0001"
    as_json = json.loads(run("metrics", "--json", env=execution.env, cwd=tmp_path).stdout)
    assert as_json["direction"] == "down"
    up_metrics = json.loads(run("metrics", up_id, "--json", env=execution.env,
                                cwd=tmp_path).stdout)
    assert up_metrics["direction"] == "up"
    # and `report`: its title (the chart's too), its lines and its JSON
    reported = run("report", "--json", "--out", str(tmp_path / "reports"), env=execution.env,
                   cwd=tmp_path)
    assert reported.returncode == 0, reported.stderr
    assert json.loads(reported.stdout)["metrics"]["direction"] == "down"
    markdown = (tmp_path / "reports" / f"{down_id}.md").read_text().splitlines()
    assert markdown[0] == f"# Run {down_id}: completed (downgrade)"
    assert markdown[2] == ("- migrations undone (their inverses, newest first): V0002, V0001 "
                           "(target base)")
    text = run("report", up_id, "--out", str(tmp_path / "reports"), env=execution.env,
               cwd=tmp_path)
    assert f"Run {up_id}: completed (upgrade)" in text.stdout
    # (piped, it is the Markdown itself: whole lines, as the .md file has them)
    assert f"# Run {up_id}: completed (upgrade)" in text.stdout.splitlines()
    # and Prometheus, as a label of each run's info
    port = free_port()
    exporter = subprocess.Popen([*KGM, "metrics-server", "--port", str(port)],
                                env={**os.environ, **execution.env},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        samples = wait_until(lambda: _scraped(port), "the exporter answering", 60)
    finally:
        exporter.terminate()
        exporter.wait(timeout=30)
    assert sample(samples, "kgmigrate_run_info", run_id=down_id, status="completed",
                  direction="down", migrations="V0002,V0001") == 1
    assert sample(samples, "kgmigrate_run_info", run_id=up_id, status="completed",
                  direction="up", migrations="V0001,V0002") == 1


def _scraped(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
    try:
        return scrape(port)
    except OSError:  # not listening yet
        return None


REVIEW = '''from kgmigrate import Migration, ops

migration = Migration(batch_size=1000, business_key={{"Compound": "cid"}}, steps=[
    ops.batched("Compound", "SET e.review_status = $status", status="reviewed",
                validation="e.cid <= 'CMP{last_valid:07d}'"),
])
'''
ENTRY = re.compile(r"cid '(CMP\d{7})' \(key ([^)]+)\)")


def test_a_failed_validation_says_how_many_failed_of_how_many_by_business_key(
        execution: Execution, graph: GraphBackend, tmp_path: Path) -> None:
    """Issue 17, item 6: `batch 16: 20 entities failed validation ...: keys 75000, ...,
    75019` when all 5,000 of the batch failed (20 was the sample), named by internal ids
    only, and the offending values were in neither `status --json` nor the report."""
    # Given 300 compounds in one batch, of which 200 fail the step's validation, and a
    # migration that declares the compounds' business key
    compounds(graph, 300)
    execution.write_migration("V0001__review.py", REVIEW.format(last_valid=100))
    internal = {r["cid"]: r["key"] for r in graph.read(
        f"MATCH (e:Compound) RETURN e.cid AS cid, {graph.dialect.key('e')} AS key").records}
    # When it is upgraded
    failed = run("upgrade", "--local-workers", "1", env=execution.env, cwd=tmp_path)
    # Then the run fails (and rolls back), saying how many failed, of how many, and naming
    # the first 20 by business key and internal key
    assert failed.returncode == 1
    run_id = str(latest(execution, tmp_path)["id"])
    assert failed.stdout.splitlines()[-2] == f"run {run_id}: rolled_back  upgrade"
    error = failed.stdout.splitlines()[-1]
    head, _, named = error.partition("; first 20: ")
    assert head == ("  step 1 (on :Compound: SET e.review_status = $status): batch 1: 200 of "
                    "300 entities failed validation `e.cid <= 'CMP0000100'`")
    shown = ENTRY.findall(named)
    assert len(shown) == 20 and ", ".join(f"cid '{c}' (key {k})" for c, k in shown) == named
    assert len({c for c, _ in shown}) == 20 and all(c > "CMP0000100" for c, _ in shown)
    assert all(str(internal[c]) == k for c, k in shown)
    # and `status --json` holds the failed batch: the counts, and each offending entity's
    # keys and values after the change
    [batch] = latest(execution, tmp_path)["failed_batches"]  # type: ignore[misc]
    assert (batch["step"], batch["version"], batch["batch"]) == (1, "V0001", 1)
    assert (batch["failing"], batch["checked"]) == (200, 300)
    assert [(o["business_key"]["cid"], str(o["key"])) for o in batch["offending"]] == shown
    for entity in batch["offending"]:
        cid = entity["business_key"]["cid"]
        assert entity["key"] == internal[cid]
        assert entity["properties"] == {"i": int(cid[3:]), "cid": cid,
                                        "name": f"compound {int(cid[3:])}",
                                        "review_status": "reviewed"}
    # and `status` shows the first of them with their values
    text = run("status", env=execution.env, cwd=tmp_path).stdout
    assert ("  step 1 batch 1: 200 of 300 entities failed validation; the first 5, with their "
            "values after the change:") in text
    assert (f"    ... (`kgmigrate status {run_id} --json` and `kgmigrate report {run_id}` show "
            "the first 20)") in text
    cid, key = shown[0]
    assert f"    cid '{cid}' (key {key}): " in text and '"review_status": "reviewed"' in text
    # and so does the report, in its JSON and its Markdown
    reported = run("report", "--json", "--out", str(tmp_path / "reports"), env=execution.env,
                   cwd=tmp_path)
    assert json.loads(reported.stdout)["failed_batches"] == [batch]
    markdown = (tmp_path / "reports" / f"{run_id}.md").read_text()
    assert ("### Step 1 (V0001), batch 1: 200 of 300 entities failed validation; the first "
            "20") in markdown
    assert f'| `{key}` | "{cid}" | ' in markdown and '"review_status": "reviewed"' in markdown
    # and nothing of the batch stayed
    assert graph.read("MATCH (e:Compound) WHERE e.review_status IS NOT NULL "
                      "RETURN count(e) AS n").value("n") == 0


def test_the_failure_message_counts_and_names_what_it_can() -> None:
    some = [Offending(key=k, business_key={"cid": f"CMP{k:07d}"}) for k in (7, 9)]
    assert validation_message(3, "e.x > 0", 2, 10_000, some) == (
        "batch 3: 2 of 10,000 entities failed validation `e.x > 0`: cid 'CMP0000007' (key 7), "
        "cid 'CMP0000009' (key 9)")
    assert validation_message(3, "e.x > 0", 5_000, 10_000, some) == (
        "batch 3: 5,000 of 10,000 entities failed validation `e.x > 0`; first 2: "
        "cid 'CMP0000007' (key 7), cid 'CMP0000009' (key 9)")
    unnamed = [Offending(key=k) for k in (7, 9)]
    assert validation_message(3, "e.x > 0", 5_000, 10_000, unnamed).endswith(
        "; first 2: keys 7, 9")
    null = [Offending(key=7, business_key={"cid": None})]
    assert validation_message(3, "v", 1, 1, null) == (
        "batch 3: 1 of 1 entities failed validation `v`: cid null (key 7)")
    assert validation_message(3, "v", 0, 100, []) == (
        "batch 3 failed validation `v`, but none of its 100 entities fails it on a second look "
        "(changed meanwhile?)")


def test_a_business_key_is_a_property_name_or_one_per_label(tmp_path: Path) -> None:
    step = batched("Compound", "SET e.x = 1")
    assert Migration(steps=[step], business_key="cid").business_key_of(step) == "cid"
    per_label = Migration(steps=[step], business_key={"Gene": "symbol"})
    assert per_label.business_key_of(step) is None
    assert per_label.business_key_of(batched("Gene", "SET e.x = 1")) == "symbol"
    with pytest.raises(KgmError, match=r"^business_key: property key 'c`id' contains a "
                                       r"backtick"):
        Migration(steps=[step], business_key="c`id")
    with pytest.raises(KgmError, match=r"^business_key: label '__KGMRun' starts with"):
        Migration(steps=[step], business_key={"__KGMRun": "id"})
    with pytest.raises(KgmError, match=r"^business_key: must be a property name or a mapping"):
        Migration(steps=[step], business_key=["cid"])  # type: ignore[arg-type]
    # recorded per step, its inverse's steps included; a bad one names the file and line
    (tmp_path / "V0001__flag.py").write_text(FLAG.replace('author="test"',
                                                          'business_key="cid"'))
    registry = Registry.load(tmp_path)
    [version] = registry.order
    assert [s.business_key for s in registry.metadata(version).steps] == ["cid"]
    assert [s.business_key for s in registry.down_metadata(version).steps] == ["cid"]
    (tmp_path / "V0002__bad.py").write_text(
        "from kgmigrate import Migration, ops\n\n"
        "migration = Migration(business_key='a\\nb', steps=[ops.batched('A', 'SET e.x = 1')])\n")
    with pytest.raises(MigrationFileError, match=r"^V0002__bad.py:3: business_key: property "
                                                 r"key 'a\\nb' contains the control"):
        Registry.load(tmp_path)



FLAG_THEN_FAIL = '''from kgmigrate import Migration, ops

migration = Migration(batch_size=100, steps=[
    ops.batched("Compound", "SET e.flag = true"),
    ops.batched("Compound", "SET e.score = 1", validation="e.score = 2"),
])
'''
UNDO_FLAG = "undo 1. on :Compound: SET e.flag = true: "


def test_a_rollback_shows_what_it_restored_not_the_forward_figures(
        execution: Execution, graph: GraphBackend, tmp_path: Path) -> None:
    """While a run rolled back, its progress repeated the forward figures (`300/300 entities,
    completed`): nothing said how far the restore had got. Now each step the rollback undoes
    has its own line, `undo N. ...`, counting what it restored, in the command that follows
    the run and in `status`."""
    # Given 300 compounds, and a migration whose first step (3 batches) commits and whose
    # second fails its validation
    compounds(graph, 300)
    execution.write_migration("V0001__flag.py", FLAG_THEN_FAIL)
    # When it is upgraded, piped, and so rolled back
    failed = run("upgrade", "--local-workers", "1", env=execution.env, cwd=tmp_path)
    assert failed.returncode == 1
    # Then, once the rollback starts, the lines are the rollback's: the first step's restore,
    # ending with all 300 restored (the second step committed nothing: nothing to undo)
    lines = failed.stderr.splitlines()
    first = next(n for n, line in enumerate(lines) if line.startswith("undo "))
    assert all(line.startswith(UNDO_FLAG) for line in lines[first:]), lines
    assert re.fullmatch(re.escape(UNDO_FLAG) + r"300/300 entities restored, [\d,]+/s, "
                        "rolled_back", lines[-1]), lines
    # (the forward progress comes before, when a poll saw the run go forward: it is over in a
    # moment, so it is not asserted)
    # and `status` shows the rollback below the steps, in text and JSON
    run_id = str(latest(execution, tmp_path)["id"])
    text = run("status", run_id, env=execution.env, cwd=tmp_path).stdout
    assert re.search(r"\n  rollback: " + re.escape(UNDO_FLAG) + r"3/3 batches, 300/300 "
                     r"entities restored, [\d,]+/s, rolled_back\n", text), text
    [undone] = latest(execution, tmp_path)["rollback_progress"]  # type: ignore[misc]
    assert {k: undone[k] for k in ("order", "status", "batches_done", "batches_total",
                                   "entities_done", "entities_total", "conflicts",
                                   "restoring")} == {
        "order": 1, "status": "rolled_back", "batches_done": 3, "batches_total": 3,
        "entities_done": 300, "entities_total": 300, "conflicts": 0, "restoring": True}
    assert graph.read("MATCH (e:Compound) WHERE e.flag IS NOT NULL OR e.score IS NOT NULL "
                      "RETURN count(e) AS n").value("n") == 0
