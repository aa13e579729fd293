"""Who a call belongs to in the CRM.

- :func:`parties`: the plan-time view of the directory (which extensions are CRM users,
  crm.fallback_user's extension). Until the directory has been read (or without
  webservice credentials) every extension that matches ``pbx.extension_pattern`` counts
  as a user's, which is what pinc did before it had a directory.
- :class:`Owners`: at send time, the owner of a missed call or of one answered by an
  extension with no CRM user: the responsible manager (``pinc.routing``: the CRM record's
  owner, else who last talked with the number), if that is a CRM user; else
  crm.default_user; else nobody (the CRM keeps its own default: admin).
"""

from __future__ import annotations

import logging
import re
from typing import Protocol

from pinc import metrics
from pinc.config import Config
from pinc.crm.callbacks import Parties
from pinc.crm.numbers import is_extension
from pinc.services import Directory, Responsible

log = logging.getLogger(__name__)


class Responsibles(Protocol):
    async def responsible(self, number: str) -> Responsible: ...


def user_extension(config: Config, directory: Directory, who: str) -> str:
    """The extension of a configured CRM user (a user name or an extension), or ""."""
    who = who.strip()
    if not who:
        return ""
    if directory.known():
        for user in directory.users():
            if who in (user.user_name, user.extension):
                return user.extension
        return ""
    # no directory yet: an extension is taken at its word, a user name cannot be resolved
    return who if is_extension(who, config.pbx.extension_pattern) else ""


def parties(config: Config, directory: Directory) -> Parties:
    pattern = re.compile(config.pbx.extension_pattern)

    def is_ext(ext: str) -> bool:
        return is_extension(ext, pattern)

    if directory.known():

        def mapped(ext: str) -> bool:
            return directory.user_of(ext) is not None

    else:
        mapped = is_ext
    return Parties(
        mapped=mapped,
        fallback=user_extension(config, directory, config.crm.fallback_user),
        is_ext=is_ext,
    )


class Owners:
    """Resolves :data:`~pinc.crm.callbacks.OWNER` for the delivery worker."""

    def __init__(
        self, config: Config, directory: Directory, router: Responsibles | None
    ) -> None:
        self.config = config
        self.directory = directory
        self.router = router

    def _mapped(self, ext: str) -> bool:
        if self.directory.known():
            return self.directory.user_of(ext) is not None
        return is_extension(ext, self.config.pbx.extension_pattern)

    async def owner_of(self, number: str) -> tuple[str | None, str]:
        """(extension, why) of the CRM user who owns a call from/to ``number``."""
        if self.router is not None and number:
            try:
                answer = await self.router.responsible(number)
            except Exception as exc:  # routing's own failures are logged there
                log.debug("owner lookup for %s failed: %s", number, exc)
                answer = Responsible()
            if answer.ext and self._mapped(answer.ext):
                metrics.CRM_OWNERS.labels("responsible").inc()
                return answer.ext, f"responsible manager ({answer.source})"
        default = user_extension(self.config, self.directory, self.config.crm.default_user)
        if default:
            metrics.CRM_OWNERS.labels("default").inc()
            return default, "crm.default_user"
        metrics.CRM_OWNERS.labels("none").inc()
        return None, "no responsible manager and no crm.default_user"
