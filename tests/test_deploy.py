"""The deployment files, checked as far as a machine without a Docker engine allows: the
compose file against the Compose Specification schema, the Kubernetes manifests against the
API schemas, the Dockerfile against what the tests install, and each against the properties
the docs promise (secrets from the environment, non-root, scalable batch workers, a shared
backup volume)."""

import importlib.metadata
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "k8s"
KGMIGRATE_SERVICES = ("control-worker", "batch-worker", "flower", "exporter")
KUBERNETES_VERSION = "1.30.0"


def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())  # type: ignore[no-any-return]


def test_the_compose_file_follows_the_compose_specification() -> None:
    schema = json.loads((ROOT / "tests" / "schemas" / "compose-spec.json").read_text())
    # its $schema names draft 2019-09 with a trailing '#' that jsonschema does not recognize
    jsonschema.Draft201909Validator(schema).validate(compose())


def test_compose_takes_every_secret_from_the_environment() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    for secret in ("NEO4J_PASSWORD", "REDIS_PASSWORD", "KGMIGRATE_FLOWER_PASSWORD"):
        # required interpolations: compose refuses to start without them
        assert f"${{{secret}:?" in text
    for name, service in compose()["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if "PASSWORD" in key or "AUTH" in key or "@" in str(value):  # @: URL credentials
                assert "${" in str(value), f"{name}: {key} is not from the environment"
    assert ".env" in (ROOT / ".gitignore").read_text().splitlines()


def test_compose_runs_the_stack_the_issue_asks_for() -> None:
    services = compose()["services"]
    neo4j, redis = services["neo4j"], services["redis"]
    assert neo4j["image"].startswith("neo4j:5") and "apoc" in neo4j["environment"]["NEO4J_PLUGINS"]
    assert "healthcheck" in neo4j and "healthcheck" in redis
    assert "--appendonly yes" in " ".join(redis["command"])
    assert "--requirepass" in " ".join(redis["command"])
    for name in KGMIGRATE_SERVICES:
        service = services[name]
        assert service["build"]["dockerfile"] == "deploy/Dockerfile"
        assert "backups:/data/backups" in service["volumes"]  # one undo log for all workers
        assert service["depends_on"]["neo4j"]["condition"] == "service_healthy"
    # `--scale batch-worker=N` needs no fixed container name or host port
    batch = services["batch-worker"]
    assert "container_name" not in batch and "ports" not in batch
    assert batch["command"][:3] == ["worker", "--queues", "kgm.batches"]
    assert services["control-worker"]["command"] == ["worker", "--queues", "kgm.control"]
    flower = services["flower"]
    assert flower["command"][0] == "flower" and "--insecure-local" not in flower["command"]
    assert {"KGMIGRATE_FLOWER_USER", "KGMIGRATE_FLOWER_PASSWORD"} <= set(flower["environment"])
    assert services["exporter"]["command"][0] == "metrics-server"


def manifests() -> list[tuple[str, dict[str, Any]]]:
    return [(path.name, doc) for path in sorted(K8S.glob("*.yaml"))
            for doc in yaml.safe_load_all(path.read_text()) if doc]


@pytest.mark.parametrize(("name", "manifest"), manifests(), ids=lambda v: v
                         if isinstance(v, str) else v["kind"])
def test_each_kubernetes_manifest_is_valid_for_the_api(name: str,
                                                        manifest: dict[str, Any]) -> None:
    kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)


def test_kubernetes_workers_scale_and_run_as_non_root() -> None:
    found = {(m["kind"], m["metadata"].get("name") or m["metadata"].get("generateName")): m
             for _, m in manifests()}
    hpa = found[("HorizontalPodAutoscaler", "kgmigrate-batch-worker")]
    assert hpa["spec"]["scaleTargetRef"]["name"] == "kgmigrate-batch-worker"
    assert ("Deployment", "kgmigrate-batch-worker") in found
    assert ("Job", "kgmigrate-upgrade-") in found
    pods = [m["spec"]["template"]["spec"] for m in found.values()
            if m["kind"] in ("Deployment", "Job")]
    assert len(pods) == 5
    for pod in pods:
        assert pod["securityContext"]["runAsNonRoot"] is True
        (container,) = pod["containers"]
        assert {"secretRef": {"name": "kgmigrate"}} in container["envFrom"]
        assert "value" not in json.dumps(container.get("env", []))  # secrets only by ref
        claims = [v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"]
                  if "persistentVolumeClaim" in v]
        assert claims == ["kgmigrate-backups"]
    pvc = found[("PersistentVolumeClaim", "kgmigrate-backups")]
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]


def test_the_dockerfile_installs_the_pinned_package_as_a_non_root_user() -> None:
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    for package in ("kgmigrate", "orchestrator", "workers"):
        assert f"COPY {package} {package}" in dockerfile
    assert "-c /tmp/requirements.lock kgmigrate" in dockerfile
    users = re.findall(r"^USER (\S+)", dockerfile, re.MULTILINE)
    assert users and users[-1] != "root"
    assert not re.search(r"(?i)(password|secret)\s*=", dockerfile)


def test_the_lock_pins_every_dependency_at_the_version_the_tests_run() -> None:
    # The image installs deploy/requirements.lock; `make install` constrains the test
    # environment to the same file, so what is tested is what ships.
    pins = dict(line.split("==") for line in
                (ROOT / "deploy" / "requirements.lock").read_text().split()
                if "==" in line)
    assert len(pins) > 20
    for name, version in pins.items():
        assert importlib.metadata.version(name) == version, name
    declared = importlib.metadata.requires("kgmigrate") or []
    runtime = {_normal(re.split(r"[\[<>=!~; ]", r)[0]) for r in declared if "extra ==" not in r}
    pinned = {_normal(name) for name in pins}
    assert runtime <= pinned, runtime - pinned


def _normal(name: str) -> str:
    """PEP 503: prometheus_client and prometheus-client are one package."""
    return re.sub(r"[-_.]+", "-", name).lower()


def test_the_wheel_the_dockerfile_builds_holds_the_packages_the_tests_import(
        tmp_path: Path) -> None:
    # The Dockerfile's build stage, without Docker: `pip wheel --no-deps .` from the repo
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("kgmigrate-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for module in ("kgmigrate/cli/__init__.py", "kgmigrate/monitoring/exporter.py",
                   "kgmigrate/engine/control.py",
                   "workers/tasks.py"):
        assert module in names
    assert not [n for n in names if n.startswith("tests/")]


def _make_dry_run(*targets: str) -> str:
    """What `make` would run for `targets` from a fresh clone (-B: nothing installed yet;
    -n: printed, not run)."""
    done = subprocess.run(["make", "-n", "-B", *targets], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("graph", ["falkordb", "neo4j"])
def test_make_demo_installs_what_the_demo_needs_and_nothing_else(graph: str) -> None:
    """Issue 17, item 12: `make demo` installed Chromium through apt (and the dev tools, the
    Cypher linter, every Neo4j), which only the tests need."""
    demo = _make_dry_run("demo", f"GRAPH={graph}")
    assert re.search(r"pip install --quiet -c deploy/requirements.lock -e \.$", demo, re.M)
    for needless in ("apt-get", "chromium", "[dev]", "npm ", "stack build --all"):
        assert needless not in demo, needless
    assert ("kgmigrate stack build\n" in demo) is (graph == "neo4j")  # its one Neo4j
    # (the check can fail: the tests' install has every one of them)
    tests = _make_dry_run("install")
    assert all(needed in tests for needed in ("apt-get", "chromium", "[dev]", "npm ",
                                              "stack build --all"))
