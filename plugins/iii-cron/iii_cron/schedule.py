"""Cron expressions: the reference's seconds-first form and the classic 5-field form.

* 6 or 7 fields, ``sec min hour day-of-month month day-of-week [year]``, read as the reference
  engine (Rust ``cron`` crate) reads them: days of week are numbered 1-7 with **1 = Sunday**
  (names work too), and when both day-of-month and day-of-week are restricted a day must match
  **both**.
* 5 fields, ``min hour day-of-month month day-of-week``, read as classic cron: days of week 0-7
  with 0 and 7 = Sunday, and a day matches when **either** day field matches.
* ``@yearly``, ``@monthly``, ``@weekly``, ``@daily``, ``@hourly`` (and croniter's other macros).

Fire times are computed in the trigger's time zone and returned in UTC.  When a DST change
repeats an hour, a job with a fixed hour fires once (in the first pass), as classic cron does;
a job whose hour field is ``*`` keeps its real-time rhythm through both passes.  A wall time that
a DST change skips fires at the first instant after the gap.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import attrs
from croniter import (  # type: ignore[import-untyped]  # no types-croniter in the env
    CroniterBadDateError,
    CroniterError,
    croniter,
)

from iii_core.errors import RegistrationError

_DIGITS = re.compile(r"\d+")


@attrs.frozen
class CronSchedule:
    """A parsed expression in a time zone; :meth:`next_after` gives fire times."""

    expression: str
    timezone: tzinfo
    _croniter_expression: str
    _seconds_first: bool
    _fixed_hour: bool

    @classmethod
    def parse(
        cls, expression: Any, timezone: Any = None, *, now: datetime | None = None
    ) -> CronSchedule:
        """Parse or raise :class:`RegistrationError` with the reference's messages.  An
        expression with no fire time after ``now`` (default: the wall clock) is rejected too."""
        if expression is None or expression == "":
            raise RegistrationError("Cron expression is required")
        if not isinstance(expression, str):
            raise RegistrationError(f"Cron expression must be a string, got {expression!r}")
        zone = _zone(timezone)
        text = " ".join(expression.split())
        fields = text.split(" ")
        if text.startswith("@"):
            seconds_first, translated, fixed_hour = False, text, text != "@hourly"
        elif len(fields) == 5:
            seconds_first, translated, fixed_hour = False, text, fields[1] != "*"
        elif len(fields) in (6, 7):
            try:
                fields[5] = _sunday_one_to_zero(fields[5])
            except ValueError as exc:
                raise RegistrationError(f"Invalid cron expression '{expression}': {exc}") from None
            seconds_first, translated, fixed_hour = True, " ".join(fields), fields[2] != "*"
        else:
            raise RegistrationError(
                f"Invalid cron expression '{expression}': expected 5 fields (minute first) or "
                f"6-7 fields (second first), got {len(fields)}"
            )
        schedule = cls(expression, zone, translated, seconds_first, fixed_hour)
        try:
            first = schedule.next_after(now or datetime.now(UTC))
        except (CroniterError, ValueError, KeyError) as exc:
            raise RegistrationError(f"Invalid cron expression '{expression}': {exc}") from None
        if first is None:
            raise RegistrationError(f"Invalid cron expression '{expression}': it never fires")
        return schedule

    def next_after(self, after: datetime) -> datetime | None:
        """The first fire time strictly after ``after`` (UTC), or None when there is none."""
        base = after.astimezone(self.timezone)
        # At most one repeated wall time is skipped per call (a DST fold happens once).
        for _ in range(2):
            try:
                local = self._iterator(base).get_next(datetime)
            except CroniterBadDateError:
                return None
            local = local.astimezone(UTC).astimezone(self.timezone)
            if not (self._fixed_hour and _second_pass_of_fold(local)):
                return local.astimezone(UTC)
            base = local
        return None

    def _iterator(self, base: datetime) -> croniter:
        return croniter(
            self._croniter_expression,
            base,
            day_or=not self._seconds_first,
            second_at_beginning=self._seconds_first,
        )


def _zone(timezone: Any) -> tzinfo:
    if timezone is None or timezone in ("UTC", "utc", "Z"):
        return UTC
    if not isinstance(timezone, str) or not timezone:
        raise RegistrationError(f"Unknown time zone {timezone!r}: expected an IANA name")
    try:
        return ZoneInfo(timezone)
    except (ValueError, KeyError, OSError):
        raise RegistrationError(
            f"Unknown time zone '{timezone}': expected an IANA name such as 'Europe/Paris'"
        ) from None


def _sunday_one_to_zero(field: str) -> str:
    """Renumber a reference day-of-week field (1 = Sunday ... 7 = Saturday) for croniter
    (0 = Sunday).  Steps and ``#n`` suffixes are counts, not days, and stay as they are."""

    def shift(match: re.Match[str]) -> str:
        day = int(match.group())
        if not 1 <= day <= 7:
            raise ValueError(f"day of week {day} is out of range 1-7 (1 = Sunday)")
        return str(day - 1)

    items = []
    for item in field.split(","):
        base, slash, step = item.partition("/")
        day, hash_, nth = base.partition("#")
        items.append(_DIGITS.sub(shift, day) + hash_ + nth + slash + step)
    return ",".join(items)


def _second_pass_of_fold(local: datetime) -> bool:
    """True when ``local`` is the second occurrence of a wall time repeated by a DST change."""
    return local.fold == 1 and local.replace(fold=0).utcoffset() != local.utcoffset()
