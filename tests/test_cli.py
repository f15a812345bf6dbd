"""The CLI as a user runs it: a real process, real servers, one-line errors."""

import dataclasses
import json
import os
import pty
import re
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from kgmigrate.dev.neo4j_stack import EmbeddedNeo4j
from kgmigrate.dev.stack import EmbeddedStack
from kgmigrate.fingerprint import fingerprint
from kgmigrate.graph.base import GraphBackend
from kgmigrate.graph.falkordb import FalkorDBBackend
from kgmigrate.graph.neo4j import Neo4jBackend
from kgmigrate.runtime.settings import GraphTarget, parse_graph_url
from tests.conftest import Execution, free_port, graph_env

KGM = [sys.executable, "-m", "kgmigrate.cli"]


def run(*args: str, env: dict[str, str], cwd: Path,
        stdin: int | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*KGM, *args], env={**os.environ, **env}, cwd=cwd, text=True,
                          stdin=stdin, capture_output=True, timeout=300, check=False)


def runner(env: dict[str, str], cwd: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """`kgm(*args, ok=True)`: the CLI run with `env` in `cwd`, its exit code checked."""
    def kgm(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        done = run(*args, env=env, cwd=cwd)
        assert (done.returncode == 0) is ok, done.stderr
        return done
    return kgm


def test_stack_lifecycle_sample_and_info(tmp_path: Path) -> None:
    env = {"KGMIGRATE_STACK_PORT": str(free_port()), "KGMIGRATE_STACK_DIR": str(tmp_path / "s")}
    try:
        up = run("stack", "up", "--json", env=env, cwd=tmp_path)
        assert up.returncode == 0, up.stderr
        assert json.loads(up.stdout)["running"] is True
        loaded = run("sample", "--nodes", "2000", "--json", env=env, cwd=tmp_path)
        assert loaded.returncode == 0, loaded.stderr
        summary = json.loads(loaded.stdout)
        assert sum(summary["nodes"].values()) == 2000
        assert set(summary["relationships"]) == {"TREATS", "TARGETS", "ASSOCIATED_WITH",
                                                 "STUDIES", "INVESTIGATES"}
        info = run("info", "--json", env=env, cwd=tmp_path)
        assert json.loads(info.stdout)["nodes"] == summary["nodes"]
        again = run("sample", "--nodes", "10", env=env, cwd=tmp_path)
        assert again.returncode == 1
        assert again.stderr.strip() == ("kgmigrate: error: the graph already holds 2000 nodes; "
                                        "the sample loader only writes into an empty graph")
    finally:
        down = run("stack", "down", "--json", env=env, cwd=tmp_path)
    assert json.loads(down.stdout)["running"] is False
    stack = EmbeddedStack(tmp_path / "s", int(env["KGMIGRATE_STACK_PORT"]))
    assert not stack.status().running


def test_commands_start_the_stack_on_demand(tmp_path: Path) -> None:
    env = {"KGMIGRATE_STACK_PORT": str(free_port()), "KGMIGRATE_STACK_DIR": str(tmp_path / "s")}
    try:
        loaded = run("sample", "--nodes", "4", "--json", env=env, cwd=tmp_path)
        assert loaded.returncode == 0, loaded.stderr
        info = run("info", "--json", env=env, cwd=tmp_path)
        assert info.returncode == 0, info.stderr
        assert json.loads(info.stdout)["server"]["backend"] == "falkordb"
    finally:
        run("stack", "down", env=env, cwd=tmp_path)


def test_bad_configuration_is_one_line_without_traceback(tmp_path: Path) -> None:
    result = run("info", env={"KGMIGRATE_GRAPH_URL": "http://nowhere"}, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("kgmigrate: error: KGMIGRATE_GRAPH_URL: unsupported scheme")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_unreachable_graph_is_one_line(tmp_path: Path) -> None:
    url = f"falkordb://127.0.0.1:{free_port()}/g"
    result = run("info", env={"KGMIGRATE_GRAPH_URL": url}, cwd=tmp_path)
    assert result.returncode == 1
    assert "unreachable" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_migration_verbs(tmp_path: Path) -> None:
    migrations = tmp_path / "migrations"
    env = {"KGMIGRATE_STACK_PORT": str(free_port()), "KGMIGRATE_STACK_DIR": str(tmp_path / "s"),
           "KGMIGRATE_MIGRATIONS_DIR": str(migrations)}
    try:
        created = run("new", "add review flag", "--author", "ana", env=env, cwd=tmp_path)
        assert created.returncode == 0, created.stderr
        first = (migrations / "V0001__add_review_flag.py").read_text()
        assert "    # depends_on=[],  # versions to apply first" in first
        # the next one's comment names the version before it, not an example
        assert run("new", "second", env=env, cwd=tmp_path).returncode == 0
        second = (migrations / "V0002__second.py").read_text()
        assert ('    # depends_on=["V0001"],  # versions to apply first (default: the one '
                "before it, V0001)\n") in second
        compile(second, "V0002__second.py", "exec")  # still a valid file
        (migrations / "V0002__second.py").unlink()
        fresh = run("list", env=env, cwd=tmp_path)  # the stack is new: no graph yet
        assert fresh.stderr == (
            f"kgmigrate: error: no graph 'vitalyst' on falkordb://127.0.0.1:"
            f"{env['KGMIGRATE_STACK_PORT']}; graphs: (none) (a command that writes, such as "
            "`upgrade` or `sample`, creates it)\n")
        assert run("sample", "--nodes", "4", env=env, cwd=tmp_path).returncode == 0
        listed = json.loads(run("list", "--json", env=env, cwd=tmp_path).stdout)
        assert [(m["version"], m["state"]) for m in listed] == [("V0001", "pending")]
        planned = json.loads(run("plan", "--json", env=env, cwd=tmp_path).stdout)
        assert planned[0]["steps"][0]["estimated_entities"] == 0
        human = run("plan", env=env, cwd=tmp_path)
        assert "V0001" in human.stdout and "Plan" in human.stdout
        # issue 17, item 14: the scaffold's `MyLabel` matches nothing, and plan says so
        assert human.stderr == ("warning: V0001 step 1 (on :MyLabel: SET e.my_property = "
                                "$value) matches no entities on this graph: check its label "
                                "or type and `where`\n")
        valid = run("validate", env=env, cwd=tmp_path)
        assert valid.returncode == 0 and "valid: 0 applied, 1 pending" in valid.stdout
        assert json.loads(run("history", "--json", env=env, cwd=tmp_path).stdout) == []
        none = run("status", env=env, cwd=tmp_path)
        assert none.returncode == 1
        assert none.stderr.strip() == "kgmigrate: error: no runs recorded yet"
        free = run("unlock", env=env, cwd=tmp_path)
        assert "the migration lock is free" in free.stdout
        (migrations / "V0002__broken.py").write_text("migration = 1 / 0\n")
        broken = run("list", env=env, cwd=tmp_path)
        assert broken.returncode == 1
        assert broken.stderr.strip() == ("kgmigrate: error: V0002__broken.py:1: "
                                         "ZeroDivisionError: division by zero")
    finally:
        run("stack", "down", env=env, cwd=tmp_path)


def stack_env(tmp_path: Path) -> dict[str, str]:
    """A stack of the test's own, on a free port."""
    return {"KGMIGRATE_STACK_PORT": str(free_port()), "KGMIGRATE_STACK_DIR": str(tmp_path / "s"),
            "KGMIGRATE_REPORTS_DIR": str(tmp_path / "reports"),
            "KGMIGRATE_BACKUP_DIR": str(tmp_path / "backups"),
            "KGMIGRATE_MIGRATIONS_DIR": str(Path(__file__).parent.parent / "migrations")}


def test_every_command_names_its_graph_and_the_demo_says_how_to_reach_its_own(
        tmp_path: Path) -> None:
    """Issue 17, item 7: after the demo, `list` on the default graph showed everything
    pending with nothing saying which graph it read."""
    env = stack_env(tmp_path)
    url = f"falkordb://127.0.0.1:{env['KGMIGRATE_STACK_PORT']}"
    try:
        demo = run("demo", "--nodes", "40", "--workers", "1", env=env, cwd=tmp_path)
        assert demo.returncode == 0, demo.stderr
        run_id = json.loads(run("status", "--json", env={
            **env, "KGMIGRATE_GRAPH_NAME": "kgmigrate_demo"}, cwd=tmp_path).stdout)["id"]
        assert demo.stdout.strip().splitlines()[-1] == (
            f"The demo's graph is {url}/kgmigrate_demo. Other commands use the graph your "
            "settings name (by default FalkorDB's `vitalyst`; each prints its graph first): "
            "point them at the demo's with `export KGMIGRATE_GRAPH_NAME=kgmigrate_demo`, then "
            f"try `kgmigrate history`, `list`, `status {run_id}`. Stop the server with "
            "`kgmigrate stack down`.")
        demo_env = {**env, "KGMIGRATE_GRAPH_NAME": "kgmigrate_demo"}
        listed = run("list", env=demo_env, cwd=tmp_path)
        assert listed.stdout.splitlines()[0] == f"graph {url}/kgmigrate_demo"
        assert listed.stdout.count("applied") == 4  # the header and three migrations
        as_json = run("history", "--json", env=demo_env, cwd=tmp_path)
        assert [a["version"] for a in json.loads(as_json.stdout)] == ["V0001", "V0002", "V0003"]
        assert as_json.stderr == f"graph {url}/kgmigrate_demo\n"
        for args in (["plan"], ["validate"], ["status"], ["metrics"], ["fingerprint"],
                     ["backup", "list"], ["prune", "--dry-run"], ["unlock"], ["info"]):
            shown = run(*args, env=demo_env, cwd=tmp_path)
            assert shown.returncode == 0, (args, shown.stderr)
            assert shown.stdout.splitlines()[0] == f"graph {url}/kgmigrate_demo", args
        # issue 17, item 14: metrics read as numbers, not `17535.834095760903`
        metrics = dict(line.split(None, 1) for line in run(
            "metrics", env=demo_env, cwd=tmp_path).stdout.splitlines()[1:])
        assert re.fullmatch(r"[\d,]+/s", metrics["entities_per_s"])
        assert re.fullmatch(r"[\d,]+\.\d s", metrics["duration_s"])
        assert (metrics["error_rate"], metrics["validation_success"]) == ("0.00%", "true")
        assert metrics["migrations"] == "V0001, V0002, V0003"
    finally:
        run("stack", "down", env=env, cwd=tmp_path)


def demo_graph(env: dict[str, str]) -> GraphBackend:
    """A connection of the test's own to the graph the demo of `env` fills."""
    if env["KGMIGRATE_STACK_GRAPH"] == "neo4j":
        neo4j = EmbeddedNeo4j(Path(env["KGMIGRATE_STACK_DIR"]) / "neo4j",
                              int(env["KGMIGRATE_STACK_NEO4J_PORT"]))
        return Neo4jBackend(neo4j.target)
    return FalkorDBBackend(parse_graph_url(
        f"falkordb://127.0.0.1:{env['KGMIGRATE_STACK_PORT']}/kgmigrate_demo"))


def run_on_a_terminal(*args: str, typed: str, env: dict[str, str], cwd: Path
                      ) -> subprocess.CompletedProcess[str]:
    """The command with a terminal as its stdin (as `make demo` typed at a shell has), and
    `typed` typed into it."""
    typing, terminal = pty.openpty()
    try:
        os.write(typing, typed.encode())
        return subprocess.run([*KGM, *args], env={**os.environ, **env}, cwd=cwd, text=True,
                              stdin=terminal, capture_output=True, timeout=300, check=False)
    finally:
        os.close(typing)
        os.close(terminal)


@pytest.mark.timeout(900)  # up to three demo runs, and a JVM start on Neo4j, on a shared machine
@pytest.mark.parametrize("server", ["falkordb", pytest.param("neo4j", marks=pytest.mark.neo4j)])
def test_a_second_demo_leaves_what_its_graph_holds_unless_told_to_replace_it(
        server: str, tmp_path: Path) -> None:
    """Issue 17, item 9: a second `make demo` silently wiped and reloaded the demo graph,
    the user's own work and applied migrations included."""
    env = {**stack_env(tmp_path), "KGMIGRATE_STACK_GRAPH": server,
           "KGMIGRATE_STACK_NEO4J_PORT": str(free_port()),
           "KGMIGRATE_STACK_NEO4J_HEAP": "512m", "KGMIGRATE_STACK_NEO4J_PAGE_CACHE": "64m"}
    demo_env = {**env, "KGMIGRATE_GRAPH_NAME": "kgmigrate_demo"}
    args = ("demo", "--nodes", "40", "--workers", "1")
    try:
        # Given a first demo, on a stack with no demo graph yet: it asks nothing
        first = run(*args, env=env, cwd=tmp_path, stdin=subprocess.DEVNULL)
        assert first.returncode == 0, first.stderr
        first_run = json.loads(run("history", "--json", env=demo_env, cwd=tmp_path).stdout)
        assert [a["version"] for a in first_run] == ["V0001", "V0002", "V0003"]
        # and a node of the user's own in the demo's graph
        with demo_graph(env) as graph:
            graph.write("CREATE (:Note {text: $text})", {"text": "mine"})
            before = fingerprint(graph)
            url = graph.target.display
        held = f"the demo's graph {url} holds 41 nodes, migrations V0001, V0002, V0003 applied"

        # When the demo runs again, not on a terminal (a script, CI)
        again = run(*args, env=env, cwd=tmp_path, stdin=subprocess.DEVNULL)
        # Then it refuses in one line naming the graph, what it holds and the flag (the make
        # line for the server it runs on)
        make = "make demo GRAPH=neo4j" if server == "neo4j" else "make demo"
        assert again.returncode == 1
        assert again.stderr == (f"kgmigrate: error: {held}, 1 run recorded; the demo replaces "
                                "it only when asked: `kgmigrate demo --reset` "
                                f"(`{make} RESET=1`)\n")
        # When it runs on a terminal and the user answers no
        declined = run_on_a_terminal(*args, typed="n\n", env=env, cwd=tmp_path)
        # Then it asked first, and refuses
        assert declined.returncode == 1
        assert declined.stdout == (
            f"The demo's graph {url} holds 41 nodes, migrations V0001, V0002, V0003 applied, "
            "1 run recorded. Delete all of it and load the demo anew? [y/N]: ")
        assert declined.stderr == f"kgmigrate: error: {held}, 1 run recorded; left as it is\n"
        # and both times nothing was touched: the user's node, the data, the ledger
        assert json.loads(run("history", "--json", env=demo_env, cwd=tmp_path).stdout) == (
            first_run)
        with demo_graph(env) as graph:
            assert fingerprint(graph) == before
            assert graph.read("MATCH (n:Note) RETURN n.text AS t").column("t") == ["mine"]

        # When the user answers yes on a terminal (the prompt is the CLI's, the same on both
        # servers: asked once), or gives --reset
        answers = [lambda: run_on_a_terminal(*args, typed="y\n", env=env, cwd=tmp_path)]
        for replace in [*(answers if server == "falkordb" else []),
                        lambda: run(*args, "--reset", env=env, cwd=tmp_path,
                                    stdin=subprocess.DEVNULL)]:
            replaced = replace()
            # Then the graph is the demo's anew: the user's node is gone, the chain is new
            assert replaced.returncode == 0, replaced.stderr
            history = json.loads(run("history", "--json", env=demo_env, cwd=tmp_path).stdout)
            assert [a["version"] for a in history] == ["V0001", "V0002", "V0003"]
            assert history[0]["run_id"] != first_run[0]["run_id"]
            with demo_graph(env) as graph:
                assert graph.read("MATCH (n:Note) RETURN count(n) AS n").value("n") == 0
                graph.write("CREATE (:Note {text: $text})", {"text": "mine"})
            first_run = history
    finally:
        run("stack", "down", env=env, cwd=tmp_path)


def test_read_only_commands_refuse_a_graph_that_does_not_exist(
        server: str, graph_target: GraphTarget, tmp_path: Path) -> None:
    """Issue 17, item 8: `info` with a mistyped graph name created that graph (FalkorDB
    creates a graph at the first query that touches it); Neo4j gave a driver error."""
    missing = dataclasses.replace(graph_target, name=f"missing{uuid.uuid4().hex[:8]}")
    env = {**graph_env(missing), "KGMIGRATE_MIGRATIONS_DIR": str(tmp_path / "migrations")}
    what = "database" if server == "neo4j" else "graph"
    for args in (["info"], ["list"], ["plan"], ["history", "--json"], ["status"],
                 ["validate"], ["fingerprint"], ["backup", "list"], ["unlock"]):
        refused = run(*args, env=env, cwd=tmp_path)
        assert refused.returncode == 1, args
        head, _, names = refused.stderr.partition(f"; {what}s: ")
        assert head == f"kgmigrate: error: no {what} {missing.name!r} on {missing.driver_uri}"
        assert names.endswith(" (a command that writes, such as `upgrade` or `sample`, "
                              "creates it)\n")
        if server == "neo4j":
            assert names.startswith("neo4j (")  # Community: one database besides system
    if server == "falkordb":
        graphs = redis.Redis(port=missing.port, decode_responses=True).execute_command(
            "GRAPH.LIST")
        assert missing.name not in graphs
        assert names.startswith(f"{', '.join(sorted(graphs)) or '(none)'} (")


REVIEW = """from kgmigrate import Migration, ops

migration = Migration(batch_size=100, steps=[
    ops.batched("Compound", "SET e.review_status_of_compound = $default_status",
                default_status="unreviewed")])
"""


def test_piped_progress_is_whole_plain_lines(stack: EmbeddedStack, falkordb: FalkorDBBackend,
                                             falkordb_target: GraphTarget,
                                             tmp_path: Path) -> None:
    """Issue 17, item 10: piped, the progress bars were cut at 80 columns (`... 17,27...
    complet...`); now each is a whole line, one per change of a step's status."""
    falkordb.write("UNWIND range(1, 300) AS i CREATE (:Compound {i: i})")
    execution = Execution(stack, falkordb_target, tmp_path)
    execution.write_migration("V0001__review.py", REVIEW)
    done = run("upgrade", "--local-workers", "1", env=execution.env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    step = "1. on :Compound: SET e.review_status_of_compound = $default_status: "
    lines = done.stderr.splitlines()
    assert all(line.startswith(step) for line in lines), lines
    assert re.fullmatch(re.escape(step) + r"300/300 entities, [\d,]+/s, completed", lines[-1])
    assert len(lines[-1]) > 80 and "…" not in done.stderr
    statuses = [line.rsplit(", ", 1)[1] for line in lines]
    assert statuses.count("completed") == 1  # a line per change of status (and per 5 s)


UNSTORABLE = [  # (the step, as a migration file writes it; what is refused, and why)
    ('ops.add_property("Compound", "score", float("nan"))',
     "step 1 (add :Compound.score = nan where absent): value: nan is not a finite number"),
    ('ops.add_property("Compound", "score", float("inf"))',
     "step 1 (add :Compound.score = inf where absent): value: inf is not a finite number"),
    ('ops.add_property("Compound", "score", 2**64)',
     "step 1 (add :Compound.score = 18446744073709551616 where absent): value: integer "
     "18446744073709551616 does not fit in 64 bits"),
    ('ops.batched("Compound", "SET e.score = $low", low=-2**63 - 1)',
     "step 1 (on :Compound: SET e.score = $low): parameter low: integer "
     "-9223372036854775809 does not fit in 64 bits"),
    ('ops.add_property("Compound", "score", "a\\x00b")',
     r"step 1 (add :Compound.score = 'a\x00b' where absent): value: 'a\x00b' contains a NUL "
     "character, which this server cannot take in a string"),
]


@pytest.mark.parametrize(("step", "refusal"), UNSTORABLE, ids=["nan", "inf", "int", "param",
                                                               "nul"])
def test_a_value_the_server_cannot_store_is_refused_as_the_migrations_load(
        server: str, graph: GraphBackend, execution: Execution, tmp_path: Path, step: str,
        refusal: str) -> None:
    """Issue 17, item 15: `plan` refused such a value naming the internal parameter
    `op_value`, and `upgrade` recorded a run that failed at its first step and rolled back.
    Now both name the file, the step and the value, and write nothing. A NUL character is
    refused on FalkorDB only (its client sends parameters as query text; Bolt sends data)."""
    graph.write("UNWIND range(1, 5) AS i CREATE (:Compound {i: i})")
    execution.write_migration("V0001__unstorable.py",
                              f"from kgmigrate import Migration, ops\n\n"
                              f"migration = Migration(steps=[{step}])\n")
    before = fingerprint(graph)
    if server == "neo4j" and "NUL" in refusal:
        assert run("plan", env=execution.env, cwd=tmp_path).returncode == 0
        done = run("upgrade", "--local-workers", "1", env=execution.env, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        stored = graph.read("MATCH (c:Compound) RETURN collect(DISTINCT c.score) AS s")
        assert stored.value("s") == ["a\x00b"]
        return
    for verb in ("plan", "upgrade"):
        refused = run(verb, env=execution.env, cwd=tmp_path)
        assert (refused.returncode, refused.stderr) == (
            1, f"kgmigrate: error: V0001__unstorable.py: {refusal}\n"), verb
    assert run("status", env=execution.env, cwd=tmp_path).stderr == (
        "kgmigrate: error: no runs recorded yet\n")
    assert fingerprint(graph) == before
    assert graph.read("MATCH (n) RETURN count(n) AS n").value("n") == 5  # no ledger either


def test_help_has_no_flag_placeholders_and_no_ticket() -> None:
    """Issue 17, item 14: `--help` showed `--json <bool>` (a flag takes no value), and help
    texts spoke of "the ticket", which users do not have."""
    import typer.main
    from typer.testing import CliRunner

    from kgmigrate.cli import app

    def paths(group: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
        found = [prefix]
        for name, command in group.commands.items():  # typer's groups: its own click's
            found += (paths(command, (*prefix, name)) if hasattr(command, "commands")
                      else [(*prefix, name)])
        return found

    commands = paths(typer.main.get_group(app))
    assert ("metrics",) in commands and ("backup", "restore") in commands
    for path in commands:
        shown = CliRunner().invoke(app, [*path, "--help"], terminal_width=100)
        assert shown.exit_code == 0, path
        assert "<bool>" not in shown.output and "ticket" not in shown.output.lower(), path
        assert "range>" not in shown.output and "list[" not in shown.output, path
        if "--json" in shown.output:
            assert re.search(r"^  --json +Print JSON for machines\.$", shown.output, re.M), path
