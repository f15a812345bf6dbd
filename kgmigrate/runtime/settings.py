"""Configuration from the environment (`KGMIGRATE_*`): the one module that touches it.

Besides `Settings`, three small functions cover what else needs the environment: what a child
process inherits (`child_environment`), the JDK a user pointed to (`java_home`), and a variable
a library reads only from there (`export`, for Flower's basic auth). A test holds every other
module to it.

URLs may carry passwords, so they are held as `SecretStr` and only unwrapped where a client is
built; `repr()` and `str()` of a `Settings` or `GraphTarget` never show a secret.
When neither a graph nor a broker URL is set, kgmigrate uses its embedded stack
(`kgmigrate.dev.stack`), starting it on demand.
"""

import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from kgmigrate.errors import ConfigError, KgmError
from kgmigrate.model import placeholders as nm

NEO4J_SCHEMES = frozenset({"neo4j", "neo4j+s", "neo4j+ssc", "bolt", "bolt+s", "bolt+ssc"})
FALKORDB_SCHEMES = frozenset({"falkordb"})
BROKER_SCHEMES = frozenset({"redis", "rediss"})
ENV_PREFIX = "KGMIGRATE_"
NM_PLACEHOLDERS_PREFIX = "NM_PLACEHOLDERS_"  # neo4j-migrations' placeholder variables
LOG_FORMATS = ("json", "text")
MEMORY_SIZE = re.compile(r"^(\d+)([kmg]?)$", re.IGNORECASE)  # the JVM's notation: 512m, 2g
MODULE_NAME = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


@dataclass(frozen=True)
class GraphTarget:
    """Where the graph lives, parsed from `KGMIGRATE_GRAPH_URL`."""

    backend: Literal["falkordb", "neo4j"]
    scheme: str
    host: str
    port: int
    name: str | None  # FalkorDB graph key, or Neo4j database (None: the server's default)
    username: str | None = None
    password: SecretStr | None = field(default=None, repr=False)

    @property
    def display(self) -> str:
        """The URL without credentials, safe for logs."""
        path = f"/{self.name}" if self.name else ""
        return f"{self.scheme}://{self.host}:{self.port}{path}"

    @property
    def driver_uri(self) -> str:
        """What the Neo4j driver wants: scheme, host and port only."""
        return f"{self.scheme}://{self.host}:{self.port}"

    def __str__(self) -> str:
        return self.display


def parse_graph_url(url: str, *, default_graph: str = "vitalyst") -> GraphTarget:
    """Parse a graph URL; raise ConfigError with one line naming what is wrong."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"not a valid URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in NEO4J_SCHEMES | FALKORDB_SCHEMES:
        allowed = ", ".join(f"{s}://" for s in sorted(FALKORDB_SCHEMES | NEO4J_SCHEMES))
        raise ConfigError(f"unsupported scheme {parts.scheme + '://' if scheme else '(none)'}; "
                          f"use one of {allowed}")
    if not parts.hostname:
        raise ConfigError("the URL has no host")
    name = unquote(parts.path.strip("/")) or None
    if name and "/" in name:
        raise ConfigError(f"the path must be a single graph or database name, got {name!r}")
    password = SecretStr(unquote(parts.password)) if parts.password else None
    username = unquote(parts.username) if parts.username else None
    if scheme in FALKORDB_SCHEMES:
        return GraphTarget("falkordb", scheme, parts.hostname, port or 6379,
                           name or default_graph, username, password)
    return GraphTarget("neo4j", scheme, parts.hostname, port or 7687, name, username, password)


def redact_url(url: str) -> str:
    """Replace the password in a URL by ***, for messages and logs."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = parts.username or ""
    return parts._replace(netloc=f"{user}:***@{netloc[-1]}").geturl()


class Settings(BaseSettings):
    """All of kgmigrate's configuration; every field is `KGMIGRATE_<NAME>` in the environment."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    graph_url: SecretStr | None = None
    neo4j_user: str = "neo4j"
    neo4j_password: SecretStr | None = None
    neo4j_database: str | None = None
    broker_url: SecretStr | None = None
    result_backend: SecretStr | None = None
    backup_dir: Path = Path(".kgmigrate/backups")  # undo logs and snapshots; shared by workers
    auto_rollback: bool = True  # a failed batch or step validation rolls the run back
    # Run before a migration starts when it asks for a snapshot (e.g. neo4j-admin dump); the
    # run id is passed as $KGMIGRATE_RUN_ID. Empty: kgmigrate takes its own snapshot.
    pre_migration_backup_command: str | None = None
    migrations_dir: Path = Path("migrations")
    # The embedded stack: where it keeps its data and which loopback port it listens on.
    stack_dir: Path = Path(".kgmigrate/stack")
    stack_port: int = Field(default=6399, ge=1, le=65535)
    # Which server holds the embedded stack's graph: FalkorDB in the broker's Redis, or an
    # embedded Neo4j (a JVM; see kgmigrate.dev.neo4j_stack) beside it.
    stack_graph: Literal["falkordb", "neo4j"] = "falkordb"
    stack_neo4j_port: int = Field(default=7688, ge=1, le=65535)
    stack_neo4j_version: str | None = None  # a name of tools/neo4j-server/versions.properties
    stack_neo4j_heap: str = "2g"
    stack_neo4j_page_cache: str = "1g"
    # Graph key used on FalkorDB when the URL names none (and by the embedded stack).
    graph_name: str = Field(default="vitalyst", min_length=1, max_length=200)
    query_timeout_s: float = Field(default=0.0, ge=0.0)  # 0: no timeout
    # `kgmigrate flower` requires both (HTTP basic auth) unless started --insecure-local.
    flower_user: str | None = None
    flower_password: SecretStr | None = None
    reports_dir: Path = Path(".kgmigrate/reports")  # where `kgmigrate report` writes
    # Redis redelivers an unacknowledged task after this: keep it well above the longest batch,
    # or a slow batch runs twice at once (still exactly-once in effect, but wasted).
    # redelivery of a dead worker's task: within this + 70 s (runtime.app.redelivery_bound_s);
    # a batch that outlives it is delivered twice, which exactly-once absorbs (it waits, then
    # skips), so it only has to be above a typical batch, not the longest
    visibility_timeout_s: int = Field(default=600, ge=1)
    # a finalized run's undo log is pruned this long after it ended (0: at once)
    undo_retention_days: float = Field(default=30.0, ge=0)
    # above the redelivery bound of a dead worker's task (visibility timeout + 70 s): a lease
    # that expired before a live run's task came back would let a new upgrade take the lock
    lock_lease_s: float = Field(default=900.0, gt=0)  # every task of a run renews its lock
    # How long a command asking whether workers serve the queues waits for their answers
    # (Celery's broadcast `active_queues`); a worker answers within milliseconds when idle.
    worker_ping_s: float = Field(default=2.0, gt=0, le=60)
    # A followed run (`upgrade`, `status --watch`) that shows no progress for this long makes
    # the follower ask the workers; when none serves a queue the run needs, it says so.
    worker_wait_s: float = Field(default=30.0, gt=0)
    # A run whose ledger has not moved for this long while nothing waits in the batch queue is
    # carried on from the ledger (kgmigrate.engine.watch): the broker may have lost a task.
    stall_after_s: float = Field(default=120.0, gt=0)
    # FalkorDB has no transaction to roll back: a second look at a raw batched step's failed
    # batch (how many failed, which), and its `plan --preview`, run on a copy of the whole
    # graph. Refused past this size (the copy needs as much memory again); 0: never copied.
    probe_copy_max_mb: int = Field(default=1024, ge=0)
    hooks: str = ""  # comma-separated modules that register lifecycle hooks
    log_format: str = "json"  # json or text (workers' and the exporter's own lines)
    log_level: str = "INFO"
    # Values of `${nm:key}` placeholders in .cypher migrations: a JSON object of strings;
    # neo4j-migrations' `NM_PLACEHOLDERS_<key>` variables add to it (this one wins).
    placeholders: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict,
                                                              validate_default=True)
    # A pending migration below an applied one (one it comes after) is refused unless allowed
    # (neo4j-migrations' outOfOrder, false by default); `--out-of-order` allows it once.
    out_of_order: bool = False

    # Every setting is checked here, when settings load, so that any command refuses a wrong
    # value at once, not only the command that happens to use it (a worker, much later).

    @field_validator("log_format")
    @classmethod
    def _log_format_is_known(cls, value: str) -> str:
        if value.lower() not in LOG_FORMATS:
            raise ValueError(f"{value!r} is not a log format; use {' or '.join(LOG_FORMATS)}")
        return value.lower()

    @field_validator("log_level")
    @classmethod
    def _log_level_is_known(cls, value: str) -> str:
        if value.upper() not in logging.getLevelNamesMapping():
            raise ValueError(f"{value!r} is not a log level; use DEBUG, INFO, WARNING, ERROR "
                             "or CRITICAL")
        return value.upper()

    @field_validator("stack_neo4j_heap", "stack_neo4j_page_cache")
    @classmethod
    def _memory_size(cls, value: str) -> str:
        if not MEMORY_SIZE.match(value.strip()):
            raise ValueError(f"{value!r} is not a memory size; use e.g. 512m or 2g")
        return value.strip()

    @field_validator("hooks")
    @classmethod
    def _hooks_are_module_names(cls, value: str) -> str:
        for module in (m.strip() for m in value.split(",")):
            if module and not MODULE_NAME.match(module):
                raise ValueError(f"{module!r} is not a module name (comma-separated modules, "
                                 "e.g. mypackage.alerts)")
        return value

    @field_validator("placeholders", mode="before")
    @classmethod
    def _placeholders(cls, value: Any) -> dict[str, str]:
        if isinstance(value, str):
            try:
                value = json.loads(value) if value.strip() else {}
            except json.JSONDecodeError as exc:
                raise ValueError(f"not JSON ({exc.msg}); write a JSON object, e.g. "
                                 '{"label": "Person"}') from None
        if not isinstance(value, dict):
            raise ValueError("must be a JSON object of placeholder names to values")
        found: dict[str, str] = {}
        try:
            for name, text in os.environ.items():  # neo4j-migrations' way: lower precedence
                if name.startswith(NM_PLACEHOLDERS_PREFIX):
                    key = name.removeprefix(NM_PLACEHOLDERS_PREFIX)
                    try:
                        found[nm.check_name(key)] = nm.check_value(key, text.strip())
                    except KgmError as exc:
                        raise KgmError(f"{name}: {exc}") from None
            for key, text in value.items():
                found[nm.check_name(str(key))] = nm.check_value(key, text)
        except KgmError as exc:
            raise ValueError(str(exc)) from None
        return found

    @field_validator("flower_user")
    @classmethod
    def _flower_user_fits_basic_auth(cls, value: str | None) -> str | None:
        if value is not None and (":" in value or "," in value):
            raise ValueError("cannot contain ':' or ','")
        return value

    @field_validator("graph_url")
    @classmethod
    def _graph_url_parses(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            try:
                parse_graph_url(value.get_secret_value())
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("broker_url", "result_backend")
    @classmethod
    def _broker_url_is_redis(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            scheme = urlsplit(value.get_secret_value()).scheme.lower()
            if scheme not in BROKER_SCHEMES:
                raise ValueError(f"unsupported scheme {scheme or '(none)'!r}; use redis:// or "
                                 "rediss://")
        return value

    @property
    def graph_target(self) -> GraphTarget | None:
        """The configured graph, or None when the embedded stack is to be used."""
        if self.graph_url is None:
            return None
        target = parse_graph_url(self.graph_url.get_secret_value(), default_graph=self.graph_name)
        if target.backend == "neo4j":
            # URL credentials win; otherwise the dedicated variables apply.
            return GraphTarget(
                "neo4j", target.scheme, target.host, target.port,
                target.name or self.neo4j_database,
                target.username or self.neo4j_user,
                target.password or self.neo4j_password,
            )
        return target


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment; turn validation errors into one ConfigError line."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = "_".join(str(part) for part in first["loc"]).upper()
        message = first["msg"].removeprefix("Value error, ")
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ConfigError(f"{ENV_PREFIX}{loc}: {message}{more}") from None


def child_environment(**extra: str) -> dict[str, str]:
    """This process's environment plus `extra`, for a child process (workers, Neo4j, Maven,
    the backup command) that needs both."""
    return {**os.environ, **extra}


def java_home() -> Path | None:
    """`JAVA_HOME`, if the user set one."""
    home = os.environ.get("JAVA_HOME")
    return Path(home) if home else None


def export(name: str, value: str | None) -> None:
    """Set (or, with None, unset) a variable of this process, for a library that reads its
    configuration only from the environment."""
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value
