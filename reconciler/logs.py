"""Request-level logging for `reconcile -v` / `--log-level` / `--log-format json`.

Python's logging module, nothing else: the reconciler's own loggers (`reconciler.*`: AWS
requests through botocore's event hooks, ffmpeg/ffprobe command lines) and httpx's (its INFO
line per request: ElevenLabs, https inputs). Every line passes one redaction (URL credentials
and query strings, and the values of the secret environment variables below), so a log can be
shipped as it is. botocore's, urllib3's and httpcore's own debug logs stay off at every level:
they print signed headers.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import time
from collections.abc import Sequence
from typing import IO

from .redaction import redact

LEVELS = ("debug", "info", "warning", "error")
FORMATS = ("text", "json")
# Environment variables whose values never appear in a log line, whatever logged them.
SECRET_ENV = ("ELEVENLABS_API_KEY", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
              "RECONCILER_API_TOKEN", "RECONCILER_WEBHOOK_SECRET", "GITHUB_TOKEN")
# Loggers that follow the chosen level; every other library stays at WARNING.
FOLLOWING = ("reconciler", "httpx")

aws_log = logging.getLogger("reconciler.aws")
command_log = logging.getLogger("reconciler.command")


class RedactingFilter(logging.Filter):
    """Replaces a record's message by its redacted text (arguments merged first, so a secret
    passed as an argument is caught too)."""

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = [os.environ.get(name, "") for name in SECRET_ENV]
        record.msg = redact(record.getMessage(), *secrets)
        record.args = ()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        doc = {"time": f"{stamp}.{int(record.msecs):03d}Z", "level": record.levelname.lower(),
               "logger": record.name, "message": record.getMessage()}
        return json.dumps(doc, ensure_ascii=False)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_HANDLER_NAME = "reconciler-cli"


def configure(level: str, fmt: str, stream: IO[str]) -> None:
    """Send the following loggers' records at `level` and above to `stream`, one line each
    (re-callable: the previous handler is replaced)."""
    unconfigure()
    root = logging.getLogger()
    handler = logging.StreamHandler(stream)
    handler.set_name(_HANDLER_NAME)
    handler.addFilter(_followed_or_warning)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root.addHandler(handler)
    for name in FOLLOWING:
        logging.getLogger(name).setLevel(level.upper())


def _followed_or_warning(record: logging.LogRecord) -> bool:
    """Other libraries' records only from WARNING up, whatever the root logger's level (a
    test runner may lower it): botocore's debug lines carry signed headers."""
    return (record.levelno >= logging.WARNING
            or record.name.split(".", 1)[0] in FOLLOWING)


def unconfigure() -> None:
    """Undo `configure` (the command is over; its stream may be closed next)."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    for name in FOLLOWING:
        logging.getLogger(name).setLevel(logging.NOTSET)


def _handler() -> logging.StreamHandler | None:
    """The handler `configure` installed, if any."""
    found = [h for h in logging.getLogger().handlers if h.get_name() == _HANDLER_NAME]
    return found[0] if found and isinstance(found[0], logging.StreamHandler) else None


def writes_json() -> bool:
    """Whether the configured handler writes JSON records (`--log-format json`)."""
    handler = _handler()
    return handler is not None and isinstance(handler.formatter, JsonFormatter)


def emit_json(message: str, level: int, name: str = "reconciler.cli") -> bool:
    """Write `message` as one record through the configured JSON handler, whatever the level
    (a progress or error line is always shown); False when logs are not JSON."""
    handler = _handler()
    if handler is None or not writes_json():
        return False
    handler.handle(logging.makeLogRecord(
        {"name": name, "levelno": level, "levelname": logging.getLevelName(level),
         "msg": message}))
    return True


def set_stream(stream: IO[str]) -> IO[str] | None:
    """Send the configured handler's lines to `stream` from now on (the progress bar's
    terminal, so a log line lands above the bar); returns the stream it wrote to before."""
    handler = _handler()
    return handler.setStream(stream) if handler is not None else None


def command(args: Sequence[str | os.PathLike]) -> None:
    """An external command about to run (ffmpeg, ffprobe), as a shell would quote it."""
    if command_log.isEnabledFor(logging.INFO):
        command_log.info("run: %s", shlex.join(str(a) for a in args))


def watch_aws(client):
    """Log each AWS request a boto3 client makes at INFO (service, operation, its bucket/key or
    URL path, HTTP status or the connection error, milliseconds); returns the client."""

    def before(params, context, **_kwargs) -> None:
        context[_STARTED] = (time.monotonic(), params.get("url_path", ""))

    def after(http_response, model, context, **_kwargs) -> None:
        _log_call(model, context, str(http_response.status_code))

    def error(exception, context, **_kwargs) -> None:
        _log_call(None, context, f"error: {type(exception).__name__}")

    client.meta.events.register("before-call", before)
    client.meta.events.register("after-call", after)
    client.meta.events.register("after-call-error", error)
    return client


_STARTED = "reconciler_started"


def _log_call(model, context: dict, result: str) -> None:
    if not aws_log.isEnabledFor(logging.INFO):
        return
    began, path = context.get(_STARTED, (time.monotonic(), ""))
    params = context.get("input_params") or {}
    target = " ".join(f"{name}={params[name]}" for name in ("Bucket", "Key", "Prefix")
                      if params.get(name)) or path
    name = f"{model.service_model.service_name} {model.name}" if model else "request"
    aws_log.info("%s %s -> %s (%.0f ms)", name, target, result,
                 (time.monotonic() - began) * 1000)
