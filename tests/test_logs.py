"""Secrets never reach a log line, even when a peer echoes them back."""

from __future__ import annotations

import io
import logging

from pinc.config import load_config
from pinc.runtime.logs import setup_logging


def test_secret_filter_scrubs_messages_and_tracebacks() -> None:
    config = load_config(None, env={"PINC_AMI_SECRET": "hunter2-ami", "PINC_CRM_SECRET": "crm-xyz"})
    stream = io.StringIO()
    setup_logging(config, stream=stream)
    log = logging.getLogger("pinc.test")
    log.warning("login refused for secret %s", "hunter2-ami")
    log.info("GET http://crm/callback?secret=crm-xyz -> 500")
    try:
        raise ValueError("bad key crm-xyz")
    except ValueError:
        log.exception("delivery failed")
    text = stream.getvalue()
    assert "hunter2-ami" not in text and "crm-xyz" not in text
    assert text.count("********") >= 3
    logging.getLogger().handlers.clear()
