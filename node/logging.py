"""Logging: one format, and a filter that masks anything shaped like an ID number before it is written.

The code never logs ID numbers on purpose; the filter is the second line of defence (for exceptions that
quote a value, third-party messages, access logs with query strings).
"""

from __future__ import annotations

import logging
import re

__all__ = ["IdNumberRedactor", "configure_logging", "redact"]

# 15 or 18 character resident/permit numbers and permit numbers starting with H/M: masked wherever they occur.
_ID_LIKE = re.compile(r"(?<![0-9A-Za-z])(\d{6})(\d{8,9}|\d{5})(\d{3}[0-9Xx]|\d)(?![0-9A-Za-z])")


def redact(text: str) -> str:
    return _ID_LIKE.sub(lambda m: m.group(1) + "*" * len(m.group(2)) + m.group(3), text)


class IdNumberRedactor(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


_configured = False


def configure_logging(level: str = "INFO") -> None:
    global _configured
    root = logging.getLogger()
    if not _configured:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.addFilter(IdNumberRedactor())
        logging.getLogger("creditnode").addHandler(handler)
        logging.getLogger("creditnode").propagate = False
        for name in ("uvicorn.access", "uvicorn.error", "httpx"):
            logging.getLogger(name).addFilter(IdNumberRedactor())
        _configured = True
    logging.getLogger("creditnode").setLevel(level)
    del root
