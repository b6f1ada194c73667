"""Logging: text or JSON lines, each with the request id, and ID numbers masked before anything is written.

The code never logs ID numbers on purpose; masking is the second line of defence (exceptions that quote a
value, third-party messages, access logs with query strings). It happens twice:

- `IdNumberRedactor`, a filter on the node's and on uvicorn's and httpx's loggers, masks the record's message
  and its string arguments in place, keeping the arguments' shape (uvicorn's access formatter unpacks five of
  them; replacing them by `()` broke every access line with an ID-like number in the URL);
- the node's formatters (`TextFormatter`, `JsonFormatter`) mask the whole formatted line, traceback included.

An "ID number" here is anything shaped like one: 18 characters (17 digits and a digit or X) or 15 digits, not
part of a longer run of digits or Latin letters, in any script's digits (ASCII, full-width, Arabic-Indic, …:
Python's `\\d` is Unicode-aware) with an ASCII or full-width X. First six and last four characters are kept.

The request id lives in `request_id_var` (set by `node.ops.middleware.RequestContextMiddleware`); log lines and
audit entries written while a request is served carry it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import sys
import time
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any, Literal
from urllib.parse import quote

__all__ = [
    "AccessLog",
    "IdNumberRedactor",
    "JsonFormatter",
    "RequestIdFilter",
    "StderrHandler",
    "TextFormatter",
    "configure_logging",
    "current_request_id",
    "redact",
    "request_id_var",
    "uvicorn_log_config",
]

LogFormat = Literal["text", "json"]

# Not preceded or followed by a digit (any script) or a Latin letter (ASCII or full-width).
_EDGE = r"\dA-Za-z\uff21-\uff3a\uff41-\uff5a"
_ID_LIKE = re.compile(
    rf"(?<![{_EDGE}])(\d{{6}})(?:(\d{{8}})(\d{{3}}[\dXx\uff38\uff58])|(\d{{5}})(\d{{4}}))(?![{_EDGE}])"
)

request_id_var: ContextVar[str | None] = ContextVar("creditnode_request_id", default=None)


def current_request_id() -> str | None:
    """The id of the request being served in this context (None outside a request)."""
    return request_id_var.get()


def _mask(m: re.Match[str]) -> str:
    middle = m.group(2) or m.group(4)
    return m.group(1) + "*" * len(middle) + (m.group(3) or m.group(5))


def redact(text: str) -> str:
    """`text` with everything shaped like an ID number masked (`310101********123X`)."""
    return _ID_LIKE.sub(_mask, text)


def _redact_arg(value: Any) -> Any:
    return redact(value) if isinstance(value, str) else value


class IdNumberRedactor(logging.Filter):
    """Masks ID-shaped numbers in a record's message, keeping `record.args` a tuple (or mapping) of the same
    shape so that formatters which read the arguments (uvicorn's access formatter) still work."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            self._mask_record(record, redacted)
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True

    @staticmethod
    def _mask_record(record: logging.LogRecord, redacted: str) -> None:
        msg, args = record.msg, record.args
        if isinstance(msg, str):
            try:
                if isinstance(args, Mapping):
                    new_args: Any = {k: _redact_arg(v) for k, v in args.items()}
                elif isinstance(args, tuple):
                    new_args = tuple(_redact_arg(v) for v in args)
                else:
                    new_args = args
                candidate = redact(msg)
                rendered = candidate % new_args if new_args else candidate
            except (TypeError, ValueError, KeyError):
                rendered = None
            if rendered == redacted:
                record.msg, record.args = candidate, new_args
                return
        # an ID number spread over several arguments, or in a non-string one (`%d`): render the message
        record.msg, record.args = redacted, None


class RequestIdFilter(logging.Filter):
    """Puts the current request id (or "-") on every record as `record.request_id`."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get() or "-"
        return True


def _request_id(record: logging.LogRecord) -> str:
    return getattr(record, "request_id", None) or request_id_var.get() or "-"


class TextFormatter(logging.Formatter):
    """`time level logger [request-id] message`, the whole line (traceback included) masked."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        record.request_id = _request_id(record)
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: `ts` (UTC, ISO 8601), `level`, `logger`, `message`, `request_id`, and
    `exc_info` / `stack_info` when present. Written with `ensure_ascii=False` so that the masking (applied to
    the serialised line) sees full-width and other non-ASCII digits as digits, not as `\\uXXXX` escapes."""

    def format(self, record: logging.LogRecord) -> str:
        obj: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": _request_id(record),
        }
        if record.exc_info and record.exc_info[1] is not None:
            obj["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            obj["exc_info"] = record.exc_text
        if record.stack_info:
            obj["stack_info"] = self.formatStack(record.stack_info)
        return redact(json.dumps(obj, ensure_ascii=False, default=str))


def make_formatter(fmt: LogFormat) -> logging.Formatter:
    return JsonFormatter() if fmt == "json" else TextFormatter()


class StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is when a record is emitted (not the one at creation: tests and CLI runners
    swap it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


# Loggers of other packages that may quote a URL or a value: masked even when their own handlers write them.
_FOREIGN_LOGGERS = ("uvicorn", "uvicorn.access", "uvicorn.error", "httpx", "sqlalchemy.engine")
_handler: logging.Handler | None = None


def configure_logging(level: str = "INFO", fmt: LogFormat = "text") -> None:
    """The node's `creditnode` logger writes to stderr in `fmt`; idempotent (a later call sets the level and
    the format). Other packages' loggers get the redactor."""
    global _handler
    node_logger = logging.getLogger("creditnode")
    if _handler is None:
        _handler = StderrHandler()
        _handler.addFilter(IdNumberRedactor())
        node_logger.addHandler(_handler)
        node_logger.propagate = False
        for name in _FOREIGN_LOGGERS:
            logger = logging.getLogger(name)
            if not any(isinstance(f, IdNumberRedactor) for f in logger.filters):
                logger.addFilter(IdNumberRedactor())
    _handler.setFormatter(make_formatter(fmt))
    node_logger.setLevel(level)


class AccessLog:
    """The access line of every HTTP request, written by the node's outermost middleware
    (`node.ops.middleware.RequestContextMiddleware`) in place of uvicorn's: the same message
    (`client - "METHOD /path?query HTTP/1.1" status`), the same line format as every other (`TextFormatter` /
    `JsonFormatter`: time, level, logger `creditnode.access`, request id), masked the same way — but composed in one
    step (~5 µs) instead of passing through the logging machinery with three filters and three maskings (~30 µs:
    a tenth of a cheap request; docs/performance.md, "Fourth pass"). Written to whatever `sys.stderr` is then.
    `creditnode serve` installs it (`app.state.access_log`); in-process test clients write none, as before."""

    LOGGER = "creditnode.access"

    def __init__(self, level: str = "INFO", fmt: LogFormat = "text") -> None:
        self.enabled = logging.getLevelNamesMapping().get(level.upper(), logging.INFO) <= logging.INFO
        self.json = fmt == "json"
        self._second = -1
        self._stamp = ""

    def _asctime(self, now: float) -> str:
        second = int(now)
        if second != self._second:  # the local-time prefix, formatted once a second
            self._second, self._stamp = second, time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
        return f"{self._stamp},{int((now - second) * 1000):03d}"

    def write(self, scope: dict[str, Any], status: int, request_id: str) -> None:
        if not self.enabled:
            return
        client = scope.get("client")
        target = quote(scope.get("root_path", "") + scope["path"])
        if scope.get("query_string"):
            target = f"{target}?{scope['query_string'].decode('ascii', 'replace')}"
        # uvicorn's access message, masked once (the client's address, method and target are all it quotes)
        message = redact(f'{"%s:%d" % tuple(client) if client else ""} - "{scope["method"]} {target} '
                         f'HTTP/{scope.get("http_version", "1.1")}" {status}')
        now = time.time()
        if self.json:
            line = json.dumps({"ts": dt.datetime.fromtimestamp(now, dt.UTC).isoformat(timespec="milliseconds")
                               .replace("+00:00", "Z"), "level": "INFO", "logger": self.LOGGER,
                               "message": message, "request_id": request_id}, ensure_ascii=False)
        else:
            line = f"{self._asctime(now)} INFO {self.LOGGER} [{request_id}] {message}"
        try:
            sys.stderr.write(line + "\n")
        except (OSError, ValueError):  # a closed or broken stderr must not fail the request
            pass


def uvicorn_log_config(level: str = "INFO", fmt: LogFormat = "text", *, access_log: bool = True) -> dict[str, Any]:
    """A `logging.config.dictConfig` for `uvicorn.run(log_config=...)`: uvicorn's own lines (startup, errors,
    access) in the node's format, with the request id and masking, on stderr."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"redact": {"()": IdNumberRedactor}, "request_id": {"()": RequestIdFilter}},
        "formatters": {"node": {"()": make_formatter, "fmt": fmt}},
        "handlers": {
            "node": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr", "formatter": "node",
                     "filters": ["redact", "request_id"]},
        },
        "loggers": {
            "uvicorn": {"handlers": ["node"], "level": level.upper(), "propagate": False},
            "uvicorn.error": {"level": level.upper()},
            "uvicorn.access": {"handlers": ["node"] if access_log else [], "level": level.upper(),
                               "propagate": False},
        },
    }
