"""What an incident analysis costs by the incident's age: the first computation, then a refresh after it.

Run: .venv/bin/python -m bench.incident_refresh DATA_DIR [--service api-3] [--ages 1,6,20] [--rounds 3]

DATA_DIR is a store with telemetry, for example the one `python -m bench.queries --keep` leaves (24 hours of 50
services). For each age, an incident of `--service` opened that many hours before the store's latest span (not
stored: the analysis is computed in this process) is analysed from nothing, then refreshed 20 s later from that
result, as the background pass and reads do while it stays open. It prints the median ms of each, the store
reads that took the most time (by the query function that made them), and the ratio refresh / first: the
computation from nothing is the baseline, measured in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from correlator.model import Incident, IncidentAnalysis
from correlator.service.analysis import IncidentAnalyses
from correlator.service.incidents import Incidents
from correlator.store import Store, StoreConfig


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir")
    parser.add_argument("--service", default="api-3")
    parser.add_argument("--ages", default="1,6,20", help="hours between the opening and the latest span")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)

    store = Store(StoreConfig(f"chdb://{args.data_dir}"))
    latest = store.rows("SELECT max(Timestamp) FROM otel.otel_traces WHERE Timestamp < now()")[0][0]
    end = latest.replace(tzinfo=UTC)
    reads: dict[str, list[float]] = {}

    def timed_rows(method: Callable[..., Any]) -> Callable[..., Any]:
        def call(*a: Any, **k: Any) -> Any:
            frame = sys._getframe(1)
            while frame.f_back is not None and frame.f_code.co_name.startswith("_"):
                frame = frame.f_back  # past private helpers, to the query function that names the read
            began = time.perf_counter()
            try:
                return method(*a, **k)
            finally:
                reads.setdefault(frame.f_code.co_name, []).append((time.perf_counter() - began) * 1000)

        return call

    store.rows = timed_rows(store.rows)  # type: ignore[method-assign]
    analyses = IncidentAnalyses(store, Incidents(store), now=lambda: end)

    def measure(
        label: str, incident: Incident, now: datetime, earlier: IncidentAnalysis | None
    ) -> tuple[IncidentAnalysis, float]:
        reads.clear()
        walls, result = [], None
        for _ in range(args.rounds):
            began = time.perf_counter()
            result = analyses._compute(incident, now, earlier)
            walls.append((time.perf_counter() - began) * 1000)
        slowest = sorted(reads.items(), key=lambda kv: -sum(kv[1]))[:5]
        shown = ", ".join(f"{name} {statistics.median(ms):.0f}" for name, ms in slowest)
        print(f"{label}: {statistics.median(walls):6.0f} ms  (slowest reads, median ms: {shown})", flush=True)
        assert result is not None
        return result, statistics.median(walls)

    print(f"incident analyses of {args.service}, store's latest span {end:%Y-%m-%d %H:%M:%S} UTC")
    for hours in (float(h) for h in args.ages.split(",")):
        incident = Incident("bench", "bench", args.service, "open", "manual", end - timedelta(hours=hours))
        first, first_ms = measure(f"opened {hours:4.0f} h before, first  ", incident, end, None)
        _, refresh_ms = measure(f"opened {hours:4.0f} h before, refresh", incident, end + timedelta(seconds=20), first)
        print(f"opened {hours:4.0f} h before, ratio refresh / first: {refresh_ms / first_ms:.2f}")
    store.close()


if __name__ == "__main__":
    main()
