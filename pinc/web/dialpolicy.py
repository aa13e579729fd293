"""pinc decides what may be dialled: contexts, callers, numbers, rates. Pure: no I/O, no clock.

Values arrive here already validated as safe (pinc.web.validate: no channel, header or
dialplan syntax can get through); this module decides whether they are *allowed*:

- **context**: a request's ``context`` is a hint, used only when it is one of
  ``pbx.originate_contexts`` (default: ``pbx.originate_context`` alone); otherwise the
  default is used, so no request can pick ``ext-local`` or any other context;
- **caller**: ``from`` is an employee extension (``pbx.extension_pattern``) and, once the
  CRM directory is known, a CRM user's extension;
- **number**: ``to`` (and a transfer to a number) must match ``pbx.dial_patterns``, by
  default the national numbers of ``[routing]``; international and short numbers need a
  pattern of their own;
- **rate**: ``pbx.originate_per_minute_ext`` per extension and ``pbx.originate_per_minute``
  in all (token buckets; a refusal takes no token).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass

from pinc.config import Config
from pinc.services import Directory

MAX_KEYS = 10_000  # extensions tracked by the rate limiter (oldest forgotten first)


class PolicyRefused(Exception):
    """The request is well-formed but not allowed; ``rule`` is "policy" or "rate"."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule
        self.message = message


def national_patterns(country_code: str, trunk_prefix: str, national_length: int) -> list[str]:
    """The default number policy: national numbers, with or without their prefix."""
    body = rf"\d{{{national_length}}}"
    prefixes = [p for p in (country_code, trunk_prefix) if p]
    alternatives = "|".join(re.escape(p) for p in prefixes)
    return [rf"(?:{alternatives})?{body}" if prefixes else body]


class RateLimiter:
    """Token buckets of ``per_minute`` tokens each, refilled continuously."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, at

    def available(self, key: str, now: float) -> float:
        tokens, at = self._buckets.get(key, (float(self.per_minute), now))
        return min(float(self.per_minute), tokens + (now - at) * self.per_minute / 60.0)

    def take(self, key: str, now: float) -> None:
        self._buckets[key] = (self.available(key, now) - 1.0, now)
        self._buckets.move_to_end(key)
        while len(self._buckets) > MAX_KEYS:
            self._buckets.popitem(last=False)


@dataclass(frozen=True)
class Decision:
    context: str
    asked_context: str | None  # the request's context when it was not allowed (for the log)


class DialPolicy:
    def __init__(self, config: Config) -> None:
        pbx, routing = config.pbx, config.routing
        self.default_context = pbx.originate_context
        self.contexts = frozenset(pbx.originate_contexts or (pbx.originate_context,))
        patterns = list(pbx.dial_patterns) or national_patterns(
            routing.country_code, routing.trunk_prefix, routing.national_length
        )
        self.numbers = [re.compile(p) for p in patterns]
        self.per_ext = RateLimiter(pbx.originate_per_minute_ext)
        self.overall = RateLimiter(pbx.originate_per_minute)

    def context(self, asked: str | None) -> Decision:
        if not asked or asked == self.default_context:
            return Decision(self.default_context, None)
        if asked in self.contexts:
            return Decision(asked, None)
        return Decision(self.default_context, asked)

    def originate(
        self, ext: str, number: str, asked_context: str | None, directory: Directory
    ) -> Decision:
        """Whether ``ext`` may call ``number``, and in which context (rate apart)."""
        self.check_caller(ext, directory)
        self.check_number(number)
        return self.context(asked_context)

    def transfer(self, to: str, *, to_is_extension: bool) -> None:
        """A transfer goes to an employee extension or to a number the policy allows."""
        if not to_is_extension:
            self.check_number(to)

    def check_caller(self, ext: str, directory: Directory) -> None:
        if directory.known() and directory.user_of(ext) is None:
            raise PolicyRefused("policy", "from: not the extension of a CRM user")

    def check_number(self, number: str, *, what: str = "to") -> None:
        if not any(p.fullmatch(number) for p in self.numbers):
            raise PolicyRefused("policy", f"{what}: not a number the dialling policy allows")

    def check_rate(self, ext: str | None, now: float) -> None:
        """Take one token for ``ext`` (if any) and one overall, or refuse taking none."""
        if self.overall.available("*", now) < 1.0:
            raise PolicyRefused("rate", "too many calls: try again in a minute")
        if ext is not None and self.per_ext.available(ext, now) < 1.0:
            raise PolicyRefused("rate", "too many calls from this extension: try again later")
        self.overall.take("*", now)
        if ext is not None:
            self.per_ext.take(ext, now)
