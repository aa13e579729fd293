"""Numbers of the lab office and small helpers the scenario families share."""

from __future__ import annotations

import trio

from tests.lab.scenario import Ctx

# company numbers (DIDs) of tests/lab/office/extensions.conf
DID_MAIN = "74951230000"  # queue sales: PJSIP/101 + PJSIP/102
DID_FPBX_RINGALL = "74951230001"  # queue fpbx-ringall: Local/10X@from-queue/n
DID_SUPPORT = "74951230002"
DID_FPBX_LINEAR = "74951230004"  # queue fpbx-linear: Local/10X@from-queue, one by one
DID_RINGGROUP = "74951230006"  # 101 & 102 & 103
DID_HUNTGROUP = "74951230007"  # 101, then 102, then 103
DID_IVR = "74951230008"
DID_CONFERENCE = "74951230009"  # room 8000
CONFERENCE = "8000"


def direct(ext: str) -> str:
    """The direct company number of extension ``ext``."""
    return "749512301" + ext[-2:]


async def settle(ctx: Ctx, timeout: float = 30) -> None:
    """Every channel gone and the CDRs in: the scenario's calls are over."""
    await ctx.ami.wait_idle(timeout)


async def after_answer(ctx: Ctx, dest_prefix: str, seconds: float, since: int = 0) -> None:
    """Wait for the DialEnd ANSWER of ``dest_prefix``, then ``seconds`` more."""
    await ctx.answered(dest_prefix, since=since)
    await trio.sleep(seconds)
