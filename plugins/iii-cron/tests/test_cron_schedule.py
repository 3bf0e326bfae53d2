"""Expressions and time zones, computed from fixed instants (no clock, no engine)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from iii_cron import CronSchedule

from iii_core import RegistrationError

MONDAY_NOON = datetime(2026, 3, 9, 12, 0, 0, tzinfo=UTC)  # 2026-03-09 is a Monday


def upcoming(
    expression: str, after: datetime, n: int = 3, timezone: str | None = None
) -> list[str]:
    schedule = CronSchedule.parse(expression, timezone, now=after)
    out = []
    for _ in range(n):
        nxt = schedule.next_after(after)
        assert nxt is not None
        out.append(nxt.isoformat())
        after = nxt
    return out


def test_six_field_seconds_first() -> None:
    assert upcoming("*/2 * * * * *", MONDAY_NOON) == [
        "2026-03-09T12:00:02+00:00",
        "2026-03-09T12:00:04+00:00",
        "2026-03-09T12:00:06+00:00",
    ]
    assert upcoming("0 30 * * * *", MONDAY_NOON, 2) == [
        "2026-03-09T12:30:00+00:00",
        "2026-03-09T13:30:00+00:00",
    ]


def test_seven_field_year() -> None:
    assert upcoming("0 0 12 1 1 * 2027", MONDAY_NOON, 1) == ["2027-01-01T12:00:00+00:00"]


def test_five_field_minute_first() -> None:
    assert upcoming("*/20 * * * *", MONDAY_NOON) == [
        "2026-03-09T12:20:00+00:00",
        "2026-03-09T12:40:00+00:00",
        "2026-03-09T13:00:00+00:00",
    ]
    # A start inside a minute goes to the next whole minute.
    assert upcoming("* * * * *", MONDAY_NOON.replace(second=30), 1) == ["2026-03-09T12:01:00+00:00"]


def test_day_of_week_numbering_follows_each_form() -> None:
    # Seconds-first form (reference): 1 = Sunday.  Classic form: 0 (and 7) = Sunday, 1 = Monday.
    assert upcoming("0 0 0 * * 1", MONDAY_NOON, 1) == ["2026-03-15T00:00:00+00:00"]
    assert upcoming("0 0 0 * * 2-6", MONDAY_NOON, 1) == ["2026-03-10T00:00:00+00:00"]
    assert upcoming("0 0 0 * * Mon", MONDAY_NOON, 1) == ["2026-03-16T00:00:00+00:00"]
    assert upcoming("0 0 * * 1", MONDAY_NOON, 1) == ["2026-03-16T00:00:00+00:00"]
    assert upcoming("0 0 * * 0", MONDAY_NOON, 1) == ["2026-03-15T00:00:00+00:00"]


def test_both_day_fields_and_in_seconds_form_or_in_classic_form() -> None:
    # A Monday the 13th (reference: both must match) ...
    assert upcoming("0 0 0 13 * Mon", MONDAY_NOON, 1) == ["2026-04-13T00:00:00+00:00"]
    # ... against classic cron, where either one matches: the 13th, then the next Monday.
    assert upcoming("0 0 13 * 1", MONDAY_NOON, 2) == [
        "2026-03-13T00:00:00+00:00",
        "2026-03-16T00:00:00+00:00",
    ]


def test_time_zone_follows_dst() -> None:
    saturday = datetime(2026, 3, 7, 12, tzinfo=UTC)  # New York switches to EDT on 2026-03-08
    assert upcoming("0 0 9 * * *", saturday, timezone="America/New_York") == [
        "2026-03-07T14:00:00+00:00",
        "2026-03-08T13:00:00+00:00",
        "2026-03-09T13:00:00+00:00",
    ]


def test_repeated_hour_fires_fixed_hour_jobs_once() -> None:
    # Berlin repeats 02:00-03:00 on 2026-10-25.
    before = datetime(2026, 10, 24, 12, tzinfo=UTC)
    assert upcoming("0 30 2 * * *", before, 2, "Europe/Berlin") == [
        "2026-10-25T00:30:00+00:00",
        "2026-10-26T01:30:00+00:00",
    ]
    # A job with a wildcard hour keeps its real-time rhythm through both passes.
    assert upcoming("0 30 * * * *", datetime(2026, 10, 25, 0, tzinfo=UTC), 3, "Europe/Berlin") == [
        "2026-10-25T00:30:00+00:00",
        "2026-10-25T01:30:00+00:00",
        "2026-10-25T02:30:00+00:00",
    ]


def test_skipped_hour_fires_after_the_gap() -> None:
    before = datetime(2026, 3, 28, 12, tzinfo=UTC)  # Berlin skips 02:00-03:00 on 2026-03-29
    assert upcoming("0 30 2 * * *", before, 2, "Europe/Berlin") == [
        "2026-03-29T01:00:00+00:00",
        "2026-03-30T00:30:00+00:00",
    ]


@pytest.mark.parametrize(
    ("expression", "timezone", "message"),
    [
        ("", None, "Cron expression is required"),
        (None, None, "Cron expression is required"),
        (5, None, "must be a string"),
        ("bogus", None, "Invalid cron expression 'bogus'"),
        ("* * *", None, "got 3"),
        ("99 * * * * *", None, "Invalid cron expression '99 * * * * *'"),
        ("0 0 0 * * 0", None, "day of week 0 is out of range 1-7"),
        ("0 0 0 30 2 *", None, "never fires"),
        ("0 0 0 1 1 * 2020", None, "never fires"),
        ("* * * * *", "Mars/Olympus", "Unknown time zone 'Mars/Olympus'"),
        ("* * * * *", "/etc/passwd", "Unknown time zone"),
        ("* * * * *", 3, "Unknown time zone"),
    ],
)
def test_invalid(expression: object, timezone: object, message: str) -> None:
    with pytest.raises(RegistrationError, match=message.replace("*", r"\*")):
        CronSchedule.parse(expression, timezone, now=MONDAY_NOON)
