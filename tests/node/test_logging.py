"""Log hygiene: ID numbers are masked in every line, whatever the digits, and no formatter is broken by it."""

from __future__ import annotations

import io
import json
import logging

import pytest

from node.logging import IdNumberRedactor, JsonFormatter, TextFormatter, redact, request_id_var

ID = "310101199003071234"
MASKED = "310101********1234"


def _access_logger(stream: io.StringIO) -> tuple[logging.Logger, logging.Handler]:
    """uvicorn's access logger with uvicorn's own access formatter (as `uvicorn.config.LOGGING_CONFIG` sets it)."""
    from uvicorn.logging import AccessFormatter

    logger = logging.getLogger("uvicorn.access")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(AccessFormatter('%(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s',
                                         use_colors=False))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    return logger, handler


def test_uvicorn_access_line_is_printed_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    """The filter used to replace `record.args` by `()`; uvicorn's AccessFormatter unpacks five args, so the
    line became `--- Logging error --- ValueError: not enough values to unpack` and a stack dump."""
    stream = io.StringIO()
    logger, handler = _access_logger(stream)
    redactor = IdNumberRedactor()
    logger.addFilter(redactor)
    try:
        # exactly what uvicorn.protocols.http.h11_impl logs for a response
        logger.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:50312", "GET", f"/api/v1/learners/{ID}?q={ID}",
                    "1.1", 404)
    finally:
        logger.removeFilter(redactor)
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
    line = stream.getvalue()
    assert "Logging error" not in capsys.readouterr().err
    assert f'"GET /api/v1/learners/{MASKED}?q={MASKED} HTTP/1.1" 404' in line, line
    assert ID not in line


@pytest.mark.parametrize(
    "spelling",
    [
        "310101199003071234",  # ASCII
        "３１０１０１１９９００３０７１２３４",  # full-width
        "３１０１０１１９９００３０７１２３Ｘ",  # full-width with a full-width check character
        "31010119900307123ｘ",  # mixed
        "٣١٠١٠١١٩٩٠٠٣٠٧١٢٣٤",  # Arabic-Indic
        "३१०१०११९९००३०७१२३४",  # Devanagari
        "310101900307123",  # 15 digits (first generation)
    ],
)
def test_any_spelling_of_an_id_number_is_masked(spelling: str) -> None:
    out = redact(f"身份证号{spelling}，请核对")
    assert spelling not in out
    masked = out.removeprefix("身份证号").removesuffix("，请核对")
    assert masked[:6] == spelling[:6] and masked[-4:] == spelling[-4:]
    assert set(masked[6:-4]) == {"*"} and len(masked) == len(spelling)


def test_numbers_that_are_not_id_numbers_stay() -> None:
    for text in ("order 12345678901234567890123", "seq 1234567", "ts 1733140800123", "key-1"):
        assert redact(text) == text


def test_the_redactor_keeps_the_args_of_other_formats() -> None:
    record = logging.LogRecord("creditnode", logging.INFO, __file__, 1, "learner %s (%d rows) id=%r", (ID, 3, ID),
                               None)
    IdNumberRedactor().filter(record)
    assert record.getMessage() == f"learner {MASKED} (3 rows) id='{MASKED}'"
    # an ID number as an int argument cannot stay an int: the message is rendered, masked
    record = logging.LogRecord("creditnode", logging.INFO, __file__, 1, "n=%d", (int(ID),), None)
    IdNumberRedactor().filter(record)
    assert record.getMessage() == f"n={MASKED}"


def _format(formatter: logging.Formatter, msg: str, *args: object, exc: bool = False) -> str:
    exc_info = None
    if exc:
        try:
            raise ValueError(f"bad id {ID}")
        except ValueError:
            import sys

            exc_info = sys.exc_info()
    record = logging.LogRecord("creditnode.test", logging.WARNING, __file__, 7, msg, args, exc_info)
    return formatter.format(record)


def test_json_lines_are_one_object_with_the_request_id_and_masked() -> None:
    token = request_id_var.set("req-abc")
    try:
        line = _format(JsonFormatter(), "failed for %s", "３１０１０１１９９００３０７１２３Ｘ", exc=True)
    finally:
        request_id_var.reset(token)
    assert "\n" not in line
    obj = json.loads(line)
    assert obj["level"] == "WARNING" and obj["logger"] == "creditnode.test" and obj["request_id"] == "req-abc"
    assert obj["message"] == "failed for ３１０１０１********１２３Ｘ"
    assert "ValueError: bad id 310101********1234" in obj["exc_info"] and ID not in line
    assert obj["ts"].endswith("Z")


def test_text_lines_carry_the_request_id_and_are_masked() -> None:
    line = _format(TextFormatter(), "failed for %s", ID, exc=True)
    assert "[-]" in line.splitlines()[0]  # no request: a dash where the id goes
    assert ID not in line and MASKED in line
    token = request_id_var.set("req-1")
    try:
        assert "[req-1]" in _format(TextFormatter(), "x")
    finally:
        request_id_var.reset(token)
