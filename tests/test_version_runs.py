"""Runs of versions resumed from an earlier result equal the runs computed from every minute: what lets the
deploy reconciler read only the minutes that changed since its last pass (correlator/service/deploys.py)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from correlator.correlate.version_runs import version_runs
from correlator.model import VersionMinute

T0 = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
GAP = timedelta(minutes=5)
Sighting = tuple[int, str, int]  # (minute from T0, version, second in that minute)


def minutes_of(sightings: Iterable[Sighting]) -> dict[tuple[str, int], VersionMinute]:
    """Aggregate sightings as service_version_minutes does: one row per (version, minute)."""
    rows: dict[tuple[str, int], VersionMinute] = {}
    for minute, version, second in sightings:
        at = T0 + timedelta(minutes=minute, seconds=second)
        row = rows.get((version, minute))
        rows[(version, minute)] = VersionMinute(
            "svc",
            "production",
            version,
            "",
            f"rev-{version}",
            min(row.first_seen, at) if row else at,
            max(row.last_seen, at) if row else at,
            (row.records if row else 0) + 1,
        )
    return rows


sightings = st.lists(
    st.tuples(st.integers(0, 120), st.sampled_from(["1.0", "2.0", "3.0"]), st.integers(0, 59)), max_size=60
)


@settings(max_examples=300, deadline=None)
@given(old=sightings, new=sightings, cut=st.integers(0, 121 * 60))
def test_runs_resumed_from_a_checkpoint_equal_runs_from_every_minute(
    old: list[Sighting], new: list[Sighting], cut: int
) -> None:
    """The reconciler's rule: a checkpoint holds the runs of the minutes first seen before its time; a pass whose
    changed minutes all start at or after it reads only the minutes first seen from it on."""
    at = T0 + timedelta(seconds=cut)
    checkpoint = version_runs([m for m in minutes_of(old).values() if m.first_seen < at], min_gap=GAP)
    changed = [T0 + timedelta(minutes=minute) for minute, _, _ in new]
    every_minute = minutes_of([*old, *new]).values()
    if changed and min(changed) < at:
        return  # the reconciler reads every minute then
    resumed = version_runs([m for m in every_minute if m.first_seen >= at], min_gap=GAP, before=checkpoint)
    assert resumed == version_runs(every_minute, min_gap=GAP)


def test_a_rollback_found_when_resuming_after_the_new_version_took_over() -> None:
    before = minutes_of([(minute, "1.0", 0) for minute in range(10)] + [(minute, "2.0", 0) for minute in range(10, 20)])
    known = version_runs(before.values(), min_gap=GAP)
    assert [(r.version, r.records) for r in known] == [("1.0", 10), ("2.0", 10)]
    later = minutes_of([(minute, "1.0", 30) for minute in range(30, 35)])
    resumed = version_runs(later.values(), min_gap=GAP, before=known)
    assert [(r.version, r.first_seen.minute, r.records) for r in resumed] == [
        ("1.0", 0, 10),
        ("2.0", 10, 10),
        ("1.0", 30, 5),
    ]


def test_a_run_open_at_the_checkpoint_goes_on_growing() -> None:
    known = version_runs(minutes_of([(minute, "1.0", 5) for minute in range(10)]).values(), min_gap=GAP)
    resumed = version_runs(
        minutes_of([(minute, "1.0", 5) for minute in range(10, 15)]).values(), min_gap=GAP, before=known
    )
    assert [(r.version, r.first_seen.minute, r.last_seen.minute, r.records) for r in resumed] == [("1.0", 0, 14, 15)]
