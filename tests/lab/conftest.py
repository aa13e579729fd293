"""Fixtures of the lab tier (tests/lab): each skips cleanly when its part of the lab is not
up, which is always the case in CI (``PINC_LAB`` unset). See tests/lab/README.md."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.lab.lab import Crm, Office, find_office, find_salesplatform, find_vtiger, lab_dir


def _need_lab() -> None:
    if lab_dir() is None:
        pytest.skip("the lab tier needs PINC_LAB (see tests/lab/README.md)")


@pytest.fixture
def pjsip_office() -> Office:
    """The PJSIP office (``start.sh --office pjsip``, or tests/lab/office with --name pjsip)."""
    _need_lab()
    office = find_office("pjsip")
    if office is None:
        pytest.skip("no PJSIP office running in $PINC_LAB (asterisk/start.sh --office pjsip)")
    return office


@pytest.fixture
def local_office() -> Office:
    """The Local-channel office (``start.sh --office local``)."""
    _need_lab()
    office = find_office("local")
    if office is None:
        pytest.skip("no Local-channel office in $PINC_LAB (asterisk/start.sh --office local)")
    return office


@pytest.fixture
def vtiger() -> Crm:
    _need_lab()
    crm = find_vtiger()
    if crm is None:
        pytest.skip("vtiger is not up in $PINC_LAB (vtiger/install.sh, vtiger/start.sh)")
    return crm


@pytest.fixture
def salesplatform() -> Crm:
    _need_lab()
    crm = find_salesplatform()
    if crm is None:
        pytest.skip("SalesPlatform is not up in $PINC_LAB (salesplatform/install.sh)")
    return crm


@pytest.fixture(scope="session")
def own_office() -> Iterator[Office]:
    """The project's own office (tests/lab/office, variant ``labpjsip``: SIP phones 101-106,
    Local phones 107-108, two carriers; see tests/lab/README.md), started through the kit
    with the lab's ports from the environment, and stopped at the end if started here.
    Drive calls on it with tests.lab.drive."""
    from tests.lab import offices

    why = offices.unavailable()
    if why:
        pytest.skip(why)
    running = find_office("labpjsip") is not None
    offices.start("labpjsip")
    office = find_office("labpjsip")
    assert office is not None, "office labpjsip started but its AMI does not answer"
    yield office
    if not running:
        offices.stop("labpjsip")
