"""JSON log lines for the runtime: one object a line, the job uuid a field of its own.

The runtime logs each step on the ``stacksapi.stack`` logger with ``job_uuid`` and ``event`` as
record extras. :class:`JsonLogFormatter` turns such records into lines a log pipeline can index
(``{"time": ..., "level": "INFO", "event": "dispatched", "job_uuid": "...", "message": ...}``);
``python -m stacksapi.stack --log-format json`` and ``stacksapi run --log-format json`` use it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging

__all__ = ["JsonLogFormatter", "configure_logging"]

_EXTRAS = ("event", "job_uuid")


class JsonLogFormatter(logging.Formatter):
    """Formats a record as one JSON object: time (UTC), level, logger, message, extras."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
        }
        for key in _EXTRAS:
            value = getattr(record, key, None)
            if value is not None:
                out[key] = value
        out["message"] = record.getMessage()
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def configure_logging(level: str | int = "INFO", *, fmt: str = "text") -> None:
    """Log to stderr at ``level`` as ``text`` or ``json`` lines; HTTP chatter only at DEBUG."""
    level_no = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    if not isinstance(level_no, int):
        raise ValueError(f"unknown log level {level!r} (DEBUG, INFO, WARNING, ERROR)")
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(JsonLogFormatter())
    elif fmt == "text":
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    else:
        raise ValueError(f"unknown log format {fmt!r} (text, json)")
    logging.basicConfig(level=level_no, handlers=[handler], force=True)
    # httpcore2's DEBUG trace prints raw response headers, unredacted: never part of DEBUG here
    # either (the CLI's -vv leaves it off the same way).
    logging.getLogger("httpcore2").setLevel(max(level_no, logging.INFO))
    if level_no > logging.DEBUG:  # one line per HTTP request is noise, and slow
        logging.getLogger("httpx2").setLevel(logging.WARNING)
