"""Read-query latency on a generated day of telemetry, each beside one hand-written SQL query asking the same.

Run: .venv/bin/python -m bench.queries [--spans 10000000] [--logs 10000000] [--runs 40] [--warmup 3] [--no-http]

An in-process server (the API on a free port, no background reconciler) on a fresh data directory. Its engine
generates the data (INSERT ... SELECT from numbers(), as ARCHITECTURE.md asks of benchmarks; bench/queries_data.py
says what it looks like): 24 hours ending now of 50 services' spans and logs, then deploys and incidents recorded
through the app's own use cases. Then, for each read, `--runs` rounds after `--warmup` ones, each round timing:
the service-layer call (what the route runs, in this process), the HTTP route (httpx against the server's port),
and the baseline, one hand-written SQL query on the same engine asking the same question. It prints p50, p99
and mean of each, the ratio ours / baseline (p50s), and the process's peak RSS (generation, then reads); then
the slowest store calls behind one service-layer call of each read, by the query function that made them.

The 1-hour reads (service list, one service, topology) ask for the last hour of the data, given explicitly: the
data ends when generation started, and "the last hour" by the wall clock would empty as the benchmark runs.
Deploy impact and the incident view run with the real clock, as they would minutes after the data arrived.

The deploys reconcile pass runs after three new spans of every service were inserted (untimed); its baseline reads
every minute of the version minutes of the services with new telemetry, as a pass without checkpoints would.

The incident view recomputes its analysis on every read here: the module constant REFRESH_EVERY (15 s) is set to
0 for this process, so GET /api/v1/incidents/{id} and IncidentAnalyses.detail take their recomputing path.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

import correlator.service.analysis as analysis_module
from bench import queries_data as data
from correlator.api.server import Server
from correlator.events.times import Window
from correlator.service.topology import service_topology
from correlator.service.traces import trace_view
from correlator.settings import Settings
from correlator.store import Store
from correlator.store.telemetry_sql import IS_ERROR, IS_REQUEST

HOUR = timedelta(hours=1)

# The baselines: one query each, written as someone who knows the tables would ask the same question.
# The trace's spans by id from the table ordered by trace id (migration 5), as the view reads them.
TRACE_BASELINE = """
SELECT * FROM $spans_by_trace WHERE TraceId = {id:String} ORDER BY Timestamp
"""
RED_BASELINE = f"""
SELECT ServiceName, count(), countIf({IS_ERROR}), quantiles(0.5, 0.95, 0.99)(Duration)
FROM $traces
WHERE Timestamp >= {{since:DateTime64(9, 'UTC')}} AND Timestamp < {{until:DateTime64(9, 'UTC')}} AND {IS_REQUEST}
    AND (empty({{service:String}}) OR ServiceName = {{service:String}})
GROUP BY ServiceName
"""
TOPOLOGY_BASELINE = f"""
SELECT calls.ServiceName, served.ServiceName, count(), countIf(served.failed), quantile(0.95)(served.Duration)
FROM (
    SELECT TraceId, ParentSpanId, ServiceName, Duration, {IS_ERROR} AS failed FROM $traces
    WHERE Timestamp >= {{since:DateTime64(9, 'UTC')}} AND Timestamp < {{until:DateTime64(9, 'UTC')}} AND {IS_REQUEST}
) AS served
INNER JOIN (
    SELECT TraceId, SpanId, ServiceName FROM $traces
    WHERE Timestamp >= {{since:DateTime64(9, 'UTC')}} AND Timestamp < {{until:DateTime64(9, 'UTC')}}
        AND SpanKind = 'Client'
) AS calls ON served.TraceId = calls.TraceId AND served.ParentSpanId = calls.SpanId
WHERE calls.ServiceName != served.ServiceName
GROUP BY 1, 2
"""
IMPACT_BASELINE = f"""
SELECT Timestamp >= {{split:DateTime64(9, 'UTC')}} AS after, count(), countIf({IS_ERROR}),
    quantiles(0.5, 0.95, 0.99)(Duration)
FROM $traces
WHERE ServiceName = {{service:String}} AND {IS_REQUEST}
    AND Timestamp >= {{split:DateTime64(9, 'UTC')}} - INTERVAL 30 MINUTE
    AND Timestamp < {{split:DateTime64(9, 'UTC')}} + INTERVAL 30 MINUTE
GROUP BY after
"""
# Which deploys of the two hours before the incident moved their service's errors (30 minutes each side)?
INCIDENT_BASELINE = f"""
SELECT deploy.deploy_id, deploy.service,
    countIf(Timestamp < deploy.started_at), countIf(Timestamp < deploy.started_at AND {IS_ERROR}),
    countIf(Timestamp >= deploy.started_at), countIf(Timestamp >= deploy.started_at AND {IS_ERROR})
FROM $traces
INNER JOIN (
    SELECT deploy_id, service, started_at FROM $deployments FINAL
    WHERE started_at >= {{opened:DateTime64(9, 'UTC')}} - INTERVAL 2 HOUR
        AND started_at <= {{opened:DateTime64(9, 'UTC')}} + INTERVAL 5 MINUTE
) AS deploy ON ServiceName = deploy.service
WHERE {IS_REQUEST}
    AND Timestamp >= {{opened:DateTime64(9, 'UTC')}} - INTERVAL 150 MINUTE
    AND Timestamp < {{opened:DateTime64(9, 'UTC')}} + INTERVAL 35 MINUTE
    AND Timestamp >= deploy.started_at - INTERVAL 30 MINUTE AND Timestamp < deploy.started_at + INTERVAL 30 MINUTE
GROUP BY deploy.deploy_id, deploy.service
"""

# Which versions ran in which minutes, for every service with new telemetry: what a deploys reconcile pass read
# before it kept checkpoints (docs/deploys-and-incidents.md, Implicit deploys).
RECONCILE_BASELINE = """
SELECT ServiceName, Environment, Version, DeploymentId, Minute, min(FirstSeen), max(LastSeen), sum(Records)
FROM $version_minutes
WHERE (ServiceName, Environment) IN (
    SELECT ServiceName, Environment FROM $version_minutes WHERE InsertedAt >= {since:DateTime64(3, 'UTC')}
)
GROUP BY ServiceName, Environment, Version, DeploymentId, Minute
"""
# Telemetry arriving from every service: copies of three of its spans of the data's last ten minutes (picked once
# into a table of their own: picking them costs seconds), stamped now.
NEWS_PICKED = """
INSERT INTO $news SELECT * FROM $traces WHERE Timestamp >= {since:DateTime64(9, 'UTC')} LIMIT 3 BY ServiceName
"""
NEWS = "INSERT INTO $traces SELECT * REPLACE (now64(9) AS Timestamp) FROM $news"


def _status_kib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return float("nan")


def peak_rss_mib() -> float:
    return _status_kib("VmHWM") / 1024


def reset_peak_rss() -> bool:
    """Start VmHWM again from the current RSS (Linux: 5 into clear_refs); False when not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def percentile(values: list[float], q: float) -> float:
    """Nearest rank: with 40 values, p99 is the largest."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, -(-int(q * 1000) * len(ordered) // 1000) - 1))]


@dataclass
class Case:
    """One read: how to pick an argument for round i, and the three ways of asking."""

    name: str
    target: str
    target_ms: float | None
    pick: Callable[[int], Any]
    ours: Callable[[Any], object]
    http: Callable[[Any], object] | None
    baseline: Callable[[Any], object]
    timings: dict[str, list[float]] | None = None


def timed(fn: Callable[[Any], object], arg: Any) -> tuple[float, float]:
    """Wall ms, and CPU ms of the whole process (the engine's threads, the server's, this one) meanwhile."""
    began, cpu = time.perf_counter(), time.process_time()
    fn(arg)
    return (time.perf_counter() - began) * 1000, (time.process_time() - cpu) * 1000


def run_case(case: Case, runs: int, warmup: int) -> dict[str, list[float]]:
    """Warm-up rounds, then `runs` rounds; the three ways alternate within a round, so load shifts hit all."""
    ways: dict[str, Callable[[Any], object]] = {"ours": case.ours, "baseline": case.baseline}
    if case.http is not None:
        ways["http"] = case.http
    timings: dict[str, list[float]] = {key: [] for name in ways for key in (name, name + " cpu")}
    for i in range(warmup + runs):
        arg = case.pick(i)
        for name, fn in ways.items():
            wall, cpu = timed(fn, arg)
            if i >= warmup:
                timings[name].append(wall)
                timings[name + " cpu"].append(cpu)
    return timings


def breakdown(store: Store, case: Case, calls: int = 3) -> list[tuple[str, float]]:
    """The store calls behind one service-layer call of a read, in order, with their median ms over `calls` calls."""
    seen: list[list[tuple[str, float]]] = []

    def wrap(method: Callable[..., Any]) -> Callable[..., Any]:
        def timed_call(*args: Any, **kwargs: Any) -> Any:
            frame = sys._getframe(1)
            while frame.f_back is not None and frame.f_code.co_name.startswith("_"):
                frame = frame.f_back  # past private helpers, to the query function that names the read
            name = f"{frame.f_globals.get('__name__', '?').rsplit('.', 1)[-1]}.{frame.f_code.co_name}"
            began = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                seen[-1].append((name, (time.perf_counter() - began) * 1000))

        return timed_call

    # One call first, unrecorded: work left by the previous read (a reconcile after its writes) would otherwise
    # shift the first call's list of store calls against the others'.
    case.ours(case.pick(0))
    store.rows = wrap(store.rows)  # type: ignore[method-assign]
    store.insert_columns = wrap(store.insert_columns)  # type: ignore[method-assign]
    try:
        for i in range(calls):
            seen.append([])
            case.ours(case.pick(i))
    finally:
        del store.rows, store.insert_columns  # back to the class's methods
    length = min(len(call) for call in seen)
    return [(seen[0][k][0], statistics.median(call[k][1] for call in seen)) for k in range(length)]


def wait_for_merges(store: Store, limit_s: float) -> float:
    """Let the background merges of the generated parts finish (as they would on a store that has been running)."""
    began, quiet = time.perf_counter(), 0
    while time.perf_counter() - began < limit_s and quiet < 3:
        time.sleep(5)  # merges are scheduled a little after the parts they merge appear
        running = store.rows("SELECT count() FROM system.merges WHERE database = {db:String}", {"db": "otel"})[0][0]
        quiet = 0 if running else quiet + 1
    return time.perf_counter() - began


def describe_store(store: Store) -> str:
    rows = store.rows(
        "SELECT table, sum(rows), count(), sum(data_compressed_bytes), sum(data_uncompressed_bytes) FROM system.parts"
        " WHERE database = 'otel' AND active"
        " AND table IN ('otel_traces', 'otel_logs', 'otel_traces_trace_id_ts', 'spans_by_trace')"
        " GROUP BY table ORDER BY table"
    )
    return "; ".join(
        f"{table} {int(n):,} rows in {parts} parts, {c / 2**20:,.0f} MiB on disk ({u / 2**20:,.0f} MiB raw)"
        for table, n, parts, c, u in rows
    )


def source_state() -> str:
    """The commit measured, and whether the correlator's code differed from it (others work in this tree)."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "correlator"], cwd=root, capture_output=True, text=True
        )
    except OSError:
        return "unknown commit"
    changed = [line[3:] for line in dirty.stdout.splitlines()]
    return head.stdout.strip() + (f" + uncommitted changes to {', '.join(changed)}" if changed else "")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spans", type=int, default=10_000_000, help="spans to generate (about)")
    parser.add_argument("--logs", type=int, default=10_000_000, help="log records to generate")
    parser.add_argument("--runs", type=int, default=40, help="measured rounds per read")
    parser.add_argument("--warmup", type=int, default=3, help="unmeasured rounds per read first")
    parser.add_argument("--no-http", action="store_true", help="skip the HTTP routes")
    parser.add_argument("--merge-wait", type=float, default=300, help="longest wait for background merges (s)")
    parser.add_argument("--keep", action="store_true", help="keep the data directory (to look at it afterwards)")
    parser.add_argument("--only", default="", help="measure only the reads whose name contains this text")
    args = parser.parse_args(argv)

    def say(text: str) -> None:
        print(text, flush=True)

    workdir = Path(tempfile.mkdtemp(prefix="correlator-bench-queries-"))
    settings = Settings(
        clickhouse_dsn=f"chdb://{workdir / 'data'}",
        http_port=0,
        otlp_http_port=0,
        otlp_grpc_port=0,
        deploys_reconcile_interval_s=0,  # no background work: reads reconcile first, as they do anyway
    )
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    say(
        f"bench.queries at {source_state()}, {datetime.now().astimezone():%Y-%m-%d %H:%M %Z}, "
        f"{platform.machine()}, {os.cpu_count()} cores, {memory_gib:.0f} GiB"
    )
    server = Server(settings, log_level="warning").start()
    try:
        assert server.state is not None
        state, store = server.state, server.state.store
        plan = data.plan(data.now_utc(), args.spans, args.logs)
        say(f"generating 24 h ending {plan.end:%H:%M:%S} UTC: {len(data.SERVICES)} services, in the engine")
        began = time.perf_counter()
        data.generate_telemetry(store, plan, say)
        generated_s = time.perf_counter() - began
        merged_s = wait_for_merges(store, args.merge_wait)
        say(f"  merges   settled, waited {merged_s:.0f} s")
        began = time.perf_counter()
        deploy_ids = data.record_deploys(state, plan)
        state.deploys.reconcile()
        incident_ids = data.open_incidents(state, plan)
        say(
            f"  {len(deploy_ids)} deploys and {len(incident_ids)} incidents through the use cases, implicit deploys "
            f"reconciled, in {time.perf_counter() - began:.1f} s"
        )
        say(f"store: {describe_store(store)}")
        deploys = int(store.rows(f"SELECT count() FROM {store.table('deployments')} FINAL")[0][0])
        say(f"  deployments: {deploys} (explicit and found in telemetry)")
        generation_peak = peak_rss_mib()
        say(f"generation: {generated_s:.0f} s, peak RSS {generation_peak:,.0f} MiB")
        reset = reset_peak_rss()

        analysis_module.REFRESH_EVERY = timedelta(0)  # every incident read recomputes (see the module docstring)
        client = httpx.Client(base_url=server.url(), timeout=120)
        rng = random.Random(11)
        cases = build_cases(state, store, plan, deploy_ids, incident_ids, client, rng, http=not args.no_http)
        cases = [case for case in cases if args.only in case.name]
        show_samples(cases)
        say(f"measuring; load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
        results = []
        for case in cases:
            began = time.perf_counter()
            timings = run_case(case, args.runs, args.warmup)
            results.append((case, timings))
            load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
            say(f"  {case.name}: {time.perf_counter() - began:.0f} s (load average now {load})")
        client.close()
        say("\nthe slowest store calls behind one service-layer call (median ms of 3 calls):")
        for case in cases:
            reads = breakdown(store, case)
            total = sum(ms for _, ms in reads)
            say(f"  {case.name}: {len(reads)} calls, {total:.0f} ms in them")
            for name, ms in sorted(reads, key=lambda r: -r[1])[:8]:
                say(f"    {ms:8.1f}  {name}")
        reads_peak = peak_rss_mib()
        report(results, args.runs)
        say(
            f"peak RSS: generation {generation_peak:,.0f} MiB; reads "
            + (f"{reads_peak:,.0f} MiB (VmHWM reset after generation)" if reset else "n/a (could not reset VmHWM)")
        )
    finally:
        server.stop()
        if args.keep:
            print(f"data kept in {workdir / 'data'}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def build_cases(
    state: Any,
    store: Store,
    plan: data.Plan,
    deploy_ids: list[str],
    incident_ids: list[str],
    client: httpx.Client,
    rng: random.Random,
    *,
    http: bool,
) -> list[Case]:
    def rows(template: str, **parameters: Any) -> list[tuple[Any, ...]]:
        sql = store.sql(
            template,
            traces="otel_traces",
            spans_by_trace="spans_by_trace",
            deployments="deployments",
            version_minutes="service_version_minutes",
        )
        return store.rows(sql, parameters)

    def news(_: int) -> datetime:
        """New spans from every service; the time just before they were inserted."""
        if not store.rows(store.sql("EXISTS TABLE $news", news="bench_news"))[0][0]:
            store.command(store.sql("CREATE TABLE $news AS $traces", news="bench_news", traces="otel_traces"))
            picked = store.sql(NEWS_PICKED, news="bench_news", traces="otel_traces")
            store.command(picked, {"since": plan.end - timedelta(minutes=10)})
        before = datetime.now(UTC) - timedelta(seconds=1)
        store.command(store.sql(NEWS, news="bench_news", traces="otel_traces"))
        return before

    def get(path: str) -> object:
        response = client.get(path)
        response.raise_for_status()
        return response.json()

    # The last hour of the data: "now" as the data saw it, so every round's window is as full as the first's.
    last_hour = Window(plan.end - HOUR, plan.end)
    window_query = f"since={last_hour.since:%Y-%m-%dT%H:%M:%SZ}&until={last_hour.until:%Y-%m-%dT%H:%M:%SZ}"

    def hour() -> Window:
        return last_hour

    def topology(_: object) -> object:
        window = hour()
        return service_topology(store, window.since, window.until)

    trace_numbers = [rng.randrange(plan.traces) for _ in range(10_000)]
    started = {i: d.at - timedelta(seconds=30) for i, d in zip(deploy_ids, plan.deploys, strict=True)}
    service_of = {i: data.SERVICES[d.service] for i, d in zip(deploy_ids, plan.deploys, strict=True)}
    opened = {i: p.opened_at for i, p in zip(incident_ids, plan.incidents, strict=True)}

    def maybe(fn: Callable[[Any], object]) -> Callable[[Any], object] | None:
        return fn if http else None

    return [
        Case(
            "trace view (random trace)", "p99 < 100 ms", 100,
            lambda i: data.trace_id(trace_numbers[i % len(trace_numbers)]),
            lambda tid: trace_view(store, tid),
            maybe(lambda tid: get(f"/api/v1/traces/{tid}")),
            lambda tid: rows(TRACE_BASELINE, id=tid),
        ),
        Case(
            "service list with health, 1 h", "p99 < 1 s", 1000,
            lambda i: None,
            lambda _: state.health.services(hour()),
            maybe(lambda _: get(f"/api/v1/services?{window_query}")),
            lambda _: rows(RED_BASELINE, since=hour().since, until=hour().until, service=""),
        ),
        Case(
            "one service's health, 1 h", "-", None,
            lambda i: data.SERVICES[rng.randrange(len(data.SERVICES))],
            lambda name: state.health.service(name, hour()),
            maybe(lambda name: get(f"/api/v1/services/{name}/health?{window_query}")),
            lambda name: rows(RED_BASELINE, since=hour().since, until=hour().until, service=name),
        ),
        Case(
            "topology, 1 h", "-", None,
            lambda i: None,
            topology,
            maybe(lambda _: get(f"/api/v1/topology?{window_query}")),
            lambda _: rows(TOPOLOGY_BASELINE, since=hour().since, until=hour().until),
        ),
        Case(
            "deploy impact (random deploy)", "-", None,
            lambda i: deploy_ids[rng.randrange(len(deploy_ids))],
            lambda deploy_id: state.deploys.detail(deploy_id),
            maybe(lambda deploy_id: get(f"/api/v1/deploys/{deploy_id}")),
            lambda deploy_id: rows(IMPACT_BASELINE, service=service_of[deploy_id], split=started[deploy_id]),
        ),
        Case(
            "incident view, recomputed", "p99 < 2 s", 2000,
            lambda i: incident_ids[i % len(incident_ids)],
            lambda incident_id: state.analyses.detail(incident_id),
            maybe(lambda incident_id: get(f"/api/v1/incidents/{incident_id}")),
            lambda incident_id: rows(INCIDENT_BASELINE, opened=opened[incident_id]),
        ),
        Case(
            "deploys reconcile pass", "-", None,
            news,
            lambda _: state.deploys.reconcile(),
            None,
            lambda since: rows(RECONCILE_BASELINE, since=since),
        ),
    ]  # fmt: skip


def show_samples(cases: list[Case]) -> None:
    """One answer of each read, cut short: the generated data gives them something to say."""
    print("what the reads answer (one call each, also a first warm-up):", flush=True)
    for case in cases:
        answer: Any = case.ours(case.pick(0))
        if isinstance(answer, list):
            text = f"{len(answer)} services, statuses " + ", ".join(
                f"{s}: {sum(1 for h in answer if h.red.status == s)}" for s in sorted({h.red.status for h in answer})
            )
        elif hasattr(answer, "spans"):
            text = f"{len(answer.spans)} spans, {len(answer.logs)} logs, services {', '.join(answer.services)}"
        elif hasattr(answer, "edges"):
            text = f"{len(answer.nodes)} nodes, {len(answer.edges)} edges"
        elif isinstance(answer, tuple):
            deploy, impact = answer
            text = (
                f"{deploy.service} {deploy.version}: {impact.verdict}, {impact.before.requests} requests before, "
                f"{impact.after.requests} after"
            )
        elif hasattr(answer, "analysis") and answer.analysis is not None:
            a = answer.analysis
            top = a.suspects[0] if a.suspects else None
            text = (
                f"{a.service}: impact start {a.impact_started_at and f'{a.impact_started_at:%H:%M}'}, "
                f"{len(a.suspects)} suspects, top {top and (top['deploy_id'], round(top['score'], 2))}, "
                f"affected {', '.join(a.affected_services)}"
            )
        elif hasattr(answer, "red"):
            text = f"{answer.red.service}: {answer.red.status}, {answer.red.requests} requests"
        elif isinstance(answer, int):
            text = f"{answer} (service, environment) pairs reconciled"
        else:
            text = type(answer).__name__
        print(f"  {case.name}: {text}", flush=True)


def report(results: list[tuple[Case, dict[str, list[float]]]], runs: int) -> None:
    def cell(values: list[float] | None, cpu: list[float] | None = None) -> str:
        if not values:
            return f"{'-':>8} {'-':>8} {'-':>8}" + (f" {'-':>7}" if cpu is not None else "")
        text = f"{percentile(values, 0.5):8.1f} {percentile(values, 0.99):8.1f} {sum(values) / len(values):8.1f}"
        return text + (f" {sum(cpu) / len(cpu):7.1f}" if cpu else "")

    print(
        f"\nwall ms over {runs} rounds after warm-up (cpu: mean CPU ms of the process per call); "
        "ratio = p50 / baseline p50",
        flush=True,
    )
    head = f"{'p50':>8} {'p99':>8} {'mean':>8}"
    print(f"{'':32} {'service layer':^34} {'HTTP':^26} {'baseline (one SQL)':^34}")
    print(f"{'read':32} {head} {'cpu':>7} {head} {head} {'cpu':>7} {'ratio':>6} {'HTTP':>6} {'cpu':>6}  target")
    for case, timings in results:
        base = percentile(timings["baseline"], 0.5)
        ours = percentile(timings["ours"], 0.5)
        cpu_ratio = sum(timings["ours cpu"]) / max(sum(timings["baseline cpu"]), 1e-9)
        http = timings.get("http")
        http_ratio = f"{percentile(http, 0.5) / base:6.1f}" if http else f"{'-':>6}"
        worst = percentile(http or timings["ours"], 0.99)
        met = "" if case.target_ms is None else ("met" if worst < case.target_ms else "NOT met")
        print(
            f"{case.name:32} {cell(timings['ours'], timings['ours cpu'])} {cell(http)} "
            f"{cell(timings['baseline'], timings['baseline cpu'])} {ours / base:6.1f} {http_ratio} {cpu_ratio:6.1f}"
            f"  {case.target} {met}",
            flush=True,
        )


if __name__ == "__main__":
    main()
