"""Logging set-up, with a filter that keeps secrets out of every log line."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from typing import TextIO

from pinc.config import Config, redact_url

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class SecretFilter(logging.Filter):
    """Replaces any configured secret that appears in a record with ``********``, and
    the credentials of any ``scheme://user:password@`` URL with ``***``.

    Code never logs secrets on purpose; this is the second line of defence for a
    value echoed back by a peer (a URL with a query string, an exception message).
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        scrubbed = redact_url(message) if "@" in message else message
        for secret in self.secrets:
            if secret in scrubbed:
                scrubbed = scrubbed.replace(secret, "********")
        if scrubbed is not message and scrubbed != message:
            record.msg = scrubbed
            record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            text = logging.Formatter().formatException(record.exc_info)
            for secret in self.secrets:
                text = text.replace(secret, "********")
            record.exc_text = redact_url(text)
        return True


def setup_logging(config: Config, *, stream: TextIO | None = None) -> None:
    """Configure the root logger once for the process."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    handler: logging.Handler = (
        logging.FileHandler(config.log.file, encoding="utf-8")
        if config.log.file
        else logging.StreamHandler(stream or sys.stderr)
    )
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(SecretFilter(config.secrets()))
    root.addHandler(handler)
    root.setLevel(config.log.level.upper())
    # hypercorn logs each line twice unless its loggers are real Logger objects (see web/server.py)
    for noisy in ("hpack", "httpcore", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
