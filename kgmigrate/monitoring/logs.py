"""Structured logs: one JSON object per line, carrying the run, step and batch a line is about.

Log aggregation (Loki, Elasticsearch, CloudWatch) can then filter a run's story across every
worker: `{"run_id": "run_01...", "step": 2, "batch": 17, ...}`. The context is set once where
work starts (`context(run_id=..., step=..., batch=...)`) and every line logged inside it carries
it, whatever module logs. `KGMIGRATE_LOG_FORMAT=json` (the default for workers) or `text`.
"""

import contextlib
import contextvars
import json
import logging
import sys
from collections.abc import Iterator
from typing import Any

from kgmigrate.runtime.settings import load_settings

_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "kgmigrate_log", default=None)
# attributes every LogRecord has: whatever else a caller passed in `extra` is logged too
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


@contextlib.contextmanager
def context(**fields: Any) -> Iterator[None]:
    """Every line logged inside carries `fields` (nested contexts add to it)."""
    token = _context.set({**current(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def current() -> dict[str, Any]:
    return _context.get() or {}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "at": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(), "logger": record.name,
            "message": record.getMessage(), **current()}
        line.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class ContextTextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = current()
        return f"{text} [{' '.join(f'{k}={v}' for k, v in fields.items())}]" if fields else text


def configure(fmt: str | None = None, level: str | None = None) -> str:
    """Route the `kgmigrate`, `orchestrator` and `workers` loggers to stderr in `fmt`
    (default: KGMIGRATE_LOG_FORMAT, else json) at `level` (KGMIGRATE_LOG_LEVEL, else INFO).
    Returns the format used."""
    # the settings checked both when they loaded; an explicit argument is the caller's own
    settings = load_settings(**{k: v for k, v in (("log_format", fmt), ("log_level", level))
                                if v is not None})
    fmt, level = settings.log_format, settings.log_level
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else ContextTextFormatter(
        "%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for name in ("kgmigrate", "orchestrator", "workers"):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.setLevel(level)
        logger.propagate = False
    return fmt
