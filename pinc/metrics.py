"""Prometheus metrics, one registry for the process.

A dedicated registry (not prometheus_client's global one) so tests that build
several apps in one process share it without duplicate-registration errors.
Services increment these; ``/metrics`` renders ``REGISTRY``.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

AMI_EVENTS = Counter("pinc_ami_events", "AMI events received", registry=REGISTRY)
AMI_RECONNECTS = Counter(
    "pinc_ami_reconnects", "AMI (re)connections after the first", registry=REGISTRY
)
AMI_PROTOCOL_ERRORS = Counter(
    "pinc_ami_protocol_errors", "AMI streams dropped for a protocol error", registry=REGISTRY
)
AMI_CONNECTED = Gauge("pinc_ami_connected", "1 while logged in to AMI", registry=REGISTRY)

AMI_ODDITIES = Counter(
    "pinc_ami_oddities",
    "AMI input the call tracker did not expect, by kind: unknown_event, missing_field, "
    "odd_channel, unseen_channel, stale_call",
    ["kind"],
    registry=REGISTRY,
)

LIVE_CALLS = Gauge("pinc_live_calls", "Calls ringing or answered now", registry=REGISTRY)
CALLS_ENDED = Counter("pinc_calls_ended", "Calls ended, by status", ["status"], registry=REGISTRY)
CHANGES_COMMITTED = Counter(
    "pinc_changes_committed", "CallChanges committed to the journal", registry=REGISTRY
)
JOURNAL_WRITE_ERRORS = Counter(
    "pinc_journal_write_errors", "Journal batches that failed and were retried", registry=REGISTRY
)

OUTBOX_BACKLOG = Gauge("pinc_outbox_backlog", "CRM callbacks waiting", registry=REGISTRY)
OUTBOX_OLDEST_AGE = Gauge(
    "pinc_outbox_oldest_age_seconds", "Age of the oldest waiting CRM callback", registry=REGISTRY
)
CRM_CALLBACKS = Counter(
    "pinc_crm_callbacks", "CRM callbacks sent, by result", ["result"], registry=REGISTRY
)
CRM_AUTH_FAILED = Gauge(
    "pinc_crm_auth_failed", "1 while the CRM refuses pinc's secret", registry=REGISTRY
)

HTTP_REQUESTS = Counter(
    "pinc_http_requests",
    "HTTP requests, by route and status code",
    ["route", "code"],
    registry=REGISTRY,
)
AUTH_FAILURES = Counter(
    "pinc_auth_failures",
    "Requests refused for a missing or wrong secret or token",
    ["route"],
    registry=REGISTRY,
)
REFUSED = Counter(
    "pinc_http_refused",
    "Requests refused by a security rule (host, origin, content_type, policy, rate)",
    ["rule"],
    registry=REGISTRY,
)
WS_CLIENTS = Gauge("pinc_ws_clients", "Websocket clients connected", registry=REGISTRY)
FEED_DROPPED = Counter("pinc_feed_dropped", "Changes a slow subscriber missed", registry=REGISTRY)

AGI_SESSIONS = Counter(
    "pinc_agi_sessions", "FastAGI sessions, by result", ["result"], registry=REGISTRY
)
ROUTING_LOOKUPS = Counter(
    "pinc_routing_lookups", "Responsible-manager lookups, by source", ["source"], registry=REGISTRY
)
ROUTING_SECONDS = Histogram(
    "pinc_routing_seconds",
    "Responsible-manager lookup time",
    buckets=(0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0),
    registry=REGISTRY,
)
