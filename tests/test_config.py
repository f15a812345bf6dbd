"""Configuration from the environment: parsing, one-line errors, no secrets in repr."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from kgmigrate.connect import resolve
from kgmigrate.errors import ConfigError
from kgmigrate.runtime.settings import load_settings, parse_graph_url, redact_url


def test_falkordb_url_names_host_port_and_graph() -> None:
    target = parse_graph_url("falkordb://:s3cret@db.internal:6380/vitalyst")
    assert (target.backend, target.host, target.port, target.name) == (
        "falkordb", "db.internal", 6380, "vitalyst")
    assert target.password is not None and target.password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(target) and "s3cret" not in str(target)


@pytest.mark.parametrize("scheme", ["neo4j", "neo4j+s", "neo4j+ssc", "bolt", "bolt+s"])
def test_neo4j_schemes(scheme: str) -> None:
    target = parse_graph_url(f"{scheme}://prod.example:7688/kg")
    assert target.backend == "neo4j" and target.name == "kg"
    assert target.driver_uri == f"{scheme}://prod.example:7688"


@pytest.mark.parametrize(("url", "message"), [
    ("http://x", "unsupported scheme http://"), ("falkordb://", "no host"),
    ("neo4j://h:notaport", "not a valid URL"), ("falkordb://h/a/b", "single graph"),
    ("localhost:7687", "unsupported scheme"),
])
def test_bad_urls_are_one_clear_line(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as failure:
        parse_graph_url(url)
    assert "\n" not in str(failure.value)


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KGMIGRATE_GRAPH_URL", "neo4j://prod:7687")
    monkeypatch.setenv("KGMIGRATE_NEO4J_USER", "migrator")
    monkeypatch.setenv("KGMIGRATE_NEO4J_PASSWORD", "hunter2")
    monkeypatch.setenv("KGMIGRATE_NEO4J_DATABASE", "vitalyst")
    monkeypatch.setenv("KGMIGRATE_BROKER_URL", "redis://:brokerpw@mq:6379/0")
    settings = load_settings()
    target = settings.graph_target
    assert target is not None
    assert (target.username, target.name) == ("migrator", "vitalyst")
    assert target.password is not None and target.password.get_secret_value() == "hunter2"
    for text in (repr(settings), str(settings), repr(target), str(target)):
        assert "hunter2" not in text and "brokerpw" not in text


@pytest.mark.parametrize(("name", "value", "message"), [
    ("KGMIGRATE_GRAPH_URL", "http://x", "KGMIGRATE_GRAPH_URL: unsupported scheme"),
    ("KGMIGRATE_BROKER_URL", "amqp://x", "KGMIGRATE_BROKER_URL: unsupported scheme 'amqp'"),
    ("KGMIGRATE_STACK_PORT", "70000", "KGMIGRATE_STACK_PORT: Input should be less than"),
    ("KGMIGRATE_STACK_PORT", "abc", "KGMIGRATE_STACK_PORT: Input should be a valid integer"),
    ("KGMIGRATE_LOG_FORMAT", "xml",
     "KGMIGRATE_LOG_FORMAT: 'xml' is not a log format; use json or text"),
    ("KGMIGRATE_LOG_LEVEL", "LOUD", "KGMIGRATE_LOG_LEVEL: 'LOUD' is not a log level"),
    ("KGMIGRATE_STACK_NEO4J_HEAP", "2 gigs",
     "KGMIGRATE_STACK_NEO4J_HEAP: '2 gigs' is not a memory size; use e.g. 512m or 2g"),
    ("KGMIGRATE_HOOKS", "alerts,my-hooks",
     "KGMIGRATE_HOOKS: 'my-hooks' is not a module name"),
    ("KGMIGRATE_FLOWER_USER", "ana:x", "KGMIGRATE_FLOWER_USER: cannot contain ':' or ','"),
    ("KGMIGRATE_WORKER_WAIT_S", "0", "KGMIGRATE_WORKER_WAIT_S: Input should be greater than 0"),
    ("KGMIGRATE_STALL_AFTER_S", "0", "KGMIGRATE_STALL_AFTER_S: Input should be greater than 0"),
    ("KGMIGRATE_PROBE_COPY_MAX_MB", "-1",
     "KGMIGRATE_PROBE_COPY_MAX_MB: Input should be greater than or equal to 0"),
    ("KGMIGRATE_WORKER_PING_S", "soon",
     "KGMIGRATE_WORKER_PING_S: Input should be a valid number"),
    ("KGMIGRATE_WORKER_PING_S", "120",
     "KGMIGRATE_WORKER_PING_S: Input should be less than or equal to 60"),
    ("KGMIGRATE_PLACEHOLDERS", "{label: 1}", "KGMIGRATE_PLACEHOLDERS: not JSON"),
    ("KGMIGRATE_PLACEHOLDERS", '["label"]',
     "KGMIGRATE_PLACEHOLDERS: must be a JSON object of placeholder names to values"),
    ("KGMIGRATE_PLACEHOLDERS", '{"port": 7687}',
     "KGMIGRATE_PLACEHOLDERS: placeholder port: the value must be a string, got int"),
    ("KGMIGRATE_PLACEHOLDERS", '{"my label": "x"}',
     "KGMIGRATE_PLACEHOLDERS: 'my label' is not a placeholder name"),
    ("KGMIGRATE_PLACEHOLDERS", '{"x": "a\\u0000b"}',
     "KGMIGRATE_PLACEHOLDERS: placeholder x: the value contains a NUL character"),
    ("KGMIGRATE_OUT_OF_ORDER", "sometimes", "KGMIGRATE_OUT_OF_ORDER: Input should be a valid"),
])
def test_invalid_environment_is_one_line_naming_the_variable(
        monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as failure:
        load_settings()
    assert str(failure.value).startswith(message)
    assert "\n" not in str(failure.value)


def test_placeholders_come_from_json_and_neo4j_migrations_variables(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 19, item 7: neo4j-migrations' NM_PLACEHOLDERS_<key> (trimmed, as it does) and
    KGMIGRATE_PLACEHOLDERS, which wins where both name a key."""
    monkeypatch.setenv("NM_PLACEHOLDERS_nodeLabel", " Person ")
    monkeypatch.setenv("NM_PLACEHOLDERS_env", "test")
    assert load_settings().placeholders == {"nodeLabel": "Person", "env": "test"}
    monkeypatch.setenv("KGMIGRATE_PLACEHOLDERS", '{"env": "production", "db.name": "x-1"}')
    assert load_settings().placeholders == {"nodeLabel": "Person", "env": "production",
                                            "db.name": "x-1"}
    monkeypatch.setenv("NM_PLACEHOLDERS_my label", "x")
    with pytest.raises(ConfigError, match=re.escape(
            "KGMIGRATE_PLACEHOLDERS: NM_PLACEHOLDERS_my label: 'my label' is not a "
            "placeholder name")):
        load_settings()


def test_redact_url_hides_the_password() -> None:
    assert redact_url("redis://user:pw@h:1/0") == "redis://user:***@h:1/0"
    assert redact_url("redis://h:1/0") == "redis://h:1/0"


def test_without_urls_everything_comes_from_the_embedded_stack(
        monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    monkeypatch.setenv("KGMIGRATE_STACK_PORT", "16555")
    endpoints = resolve(load_settings(), start_stack=False)
    assert endpoints.stack is not None
    assert endpoints.graph.display == "falkordb://127.0.0.1:16555/vitalyst"
    assert endpoints.broker_url.get_secret_value() == "redis://127.0.0.1:16555/1"
    assert endpoints.result_backend.get_secret_value() == "redis://127.0.0.1:16555/2"


def test_configured_urls_win_over_the_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KGMIGRATE_GRAPH_URL", "falkordb://g:1/x")
    monkeypatch.setenv("KGMIGRATE_BROKER_URL", "redis://b:2/0")
    monkeypatch.setenv("KGMIGRATE_RESULT_BACKEND", "redis://b:2/1")
    endpoints = resolve(load_settings(), start_stack=False)
    assert endpoints.stack is None
    assert endpoints.graph.display == "falkordb://g:1/x"


def test_a_configured_graph_alone_does_not_start_the_stack(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KGMIGRATE_GRAPH_URL", "falkordb://g:1/x")
    assert resolve(load_settings(), broker=False).stack is None
    assert resolve(load_settings(), start_stack=False).stack is not None  # broker comes from it


def test_every_command_refuses_an_invalid_setting(tmp_path: Path) -> None:
    """Issue 17, item 11: `KGMIGRATE_LOG_FORMAT=xml` was accepted by `list` and refused only
    by `worker`, which uses it. Checked at load, it stops any command (this one before it
    would start the embedded stack)."""
    done = subprocess.run([sys.executable, "-m", "kgmigrate.cli", "list"], cwd=tmp_path,
                          env={**os.environ, "KGMIGRATE_LOG_FORMAT": "xml",
                               "KGMIGRATE_STACK_DIR": str(tmp_path / "s")},
                          capture_output=True, text=True, timeout=120, check=False)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == ("kgmigrate: error: KGMIGRATE_LOG_FORMAT: 'xml' is not a log format; "
                           "use json or text\n")
    assert not (tmp_path / "s").exists()
