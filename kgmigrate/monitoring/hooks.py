"""Lifecycle hooks: Python callbacks for alerting and reporting, called as a run goes.

    from kgmigrate.monitoring import hooks

    @hooks.on("on_failure")
    def page_someone(event: hooks.Event) -> None:
        pager.send(f"migration run {event.run_id} failed: {event.detail['error']}")

Hooks run where the event happens: run and step events in the control worker, batch events in
the batch workers. So the module that registers them must be imported in every worker: name it
in `KGMIGRATE_HOOKS` (comma-separated module paths), which workers import at start. A hook
that raises is logged and ignored: an alert must never fail a migration. Hooks are called
synchronously, so keep them quick (hand slow work to a queue of your own).
"""

import importlib
import logging
from collections.abc import Callable
from typing import Any, Literal, get_args

from pydantic import Field

from kgmigrate.errors import ConfigError
from kgmigrate.model.records import _Model, utc_now
from kgmigrate.runtime.settings import load_settings

log = logging.getLogger("kgmigrate.monitoring.hooks")

HookName = Literal["before_migration", "after_migration", "before_step", "after_step",
                   "before_batch", "after_batch", "before_rollback", "after_rollback",
                   "on_failure", "on_pause"]
HOOK_NAMES: tuple[str, ...] = get_args(HookName)
ENV_VAR = "KGMIGRATE_HOOKS"


class Event(_Model):
    name: HookName
    run_id: str
    at: str  # ISO time
    status: str | None = None  # the run's, step's or batch's status after the event
    step: int | None = None  # step order
    batch: int | None = None  # batch seq
    detail: dict[str, Any] = Field(default_factory=dict)


Hook = Callable[[Event], None]
_hooks: dict[str, list[Hook]] = {name: [] for name in HOOK_NAMES}


def on(name: HookName) -> Callable[[Hook], Hook]:
    """Decorator: call the function on every `name` event."""
    def register(function: Hook) -> Hook:
        add(name, function)
        return function
    return register


def add(name: str, function: Hook) -> None:
    if name not in _hooks:
        raise ConfigError(f"no hook {name!r}; use one of {', '.join(HOOK_NAMES)}")
    if function not in _hooks[name]:
        _hooks[name].append(function)


def clear() -> None:
    for functions in _hooks.values():
        functions.clear()


def emit(name: HookName, run_id: str, **fields: Any) -> None:
    """Call the hooks registered for `name`; never raises."""
    if not _hooks[name]:
        return
    event = Event(name=name, run_id=run_id, at=utc_now().isoformat(), **fields)
    for function in list(_hooks[name]):
        try:
            function(event)
        except Exception:
            log.exception("hook %s for %s raised; ignored",
                          getattr(function, "__qualname__", function), name)


def load_configured(value: str | None = None) -> list[str]:
    """Import the modules named in KGMIGRATE_HOOKS (they register their hooks on import);
    the modules imported. A module that cannot be imported is a configuration error: a
    worker without its alerting hooks should not start."""
    spec = value if value is not None else load_settings().hooks
    modules = [m.strip() for m in spec.split(",") if m.strip()]
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ConfigError(f"{ENV_VAR}: cannot import {module}: {exc}") from None
    return modules
