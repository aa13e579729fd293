"""/ping's CRM details (for a credential): held calls, dead letters, the users list;
never a CRM's answer, which may quote anything."""

from __future__ import annotations

from pinc.web.routes_pages import _crm_details

STATUS = {"state": "error", "backlog": 2, "held": 1, "dead": 0,
          "last_error": "CRM refused the callback: 'Sorry! Attempt to access restricted file'",
          "directory": {"state": "stale", "users": 2, "age": 3.0, "last_error": "HTTP 503"}}


def test_details_leave_the_crm_answers_out() -> None:
    assert _crm_details(STATUS) == {
        "held": 1, "dead": 0, "directory": {"state": "stale", "users": 2, "age": 3.0}}


def test_a_crm_state_without_details() -> None:
    assert _crm_details({"state": "disabled", "backlog": 0}) == {}
