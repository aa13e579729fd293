"""/ping's CRM details: held calls and the users list for anyone, the reasons with the token."""

from __future__ import annotations

from pinc.web.routes_pages import _crm_details

STATUS = {"state": "error", "backlog": 2, "held": 1, "dead": 0,
          "last_error": "CRM refused the callback: 'Sorry! Attempt to access restricted file'",
          "directory": {"state": "stale", "users": 2, "age": 3.0, "last_error": "HTTP 503"}}


def test_public_details_leave_the_reasons_out() -> None:
    assert _crm_details(STATUS, authorized=False) == {
        "held": 1, "dead": 0, "directory": {"state": "stale", "users": 2, "age": 3.0}}


def test_with_the_token_the_reasons_show() -> None:
    details = _crm_details(STATUS, authorized=True)
    assert details["last_error"].startswith("CRM refused the callback")
    assert details["directory"]["last_error"] == "HTTP 503"


def test_a_crm_state_without_details() -> None:
    assert _crm_details({"state": "disabled", "backlog": 0}, authorized=True) == {}
