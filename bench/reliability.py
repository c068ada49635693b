"""Regenerate the figures of docs/reliability.md: overload, a crash run, the webhook replay property.

Run: .venv/bin/python -m bench.reliability [--seconds 60] [--kills 10] [--skip-overload] [--skip-crash]
     [--skip-replay] [--doc docs/reliability.md]

1. bench/overload.py with the server's default settings: a probe measures the sustainable rate, then real
   OTLPSpanExporters offer three times that for `--seconds`.
2. The same offered rate against a server with a tighter memory limit (`--tight-limit-mib`, about the peak the
   probe's server reached at the sustainable rate), to show the limit is held where it constrains.
3. tests/test_crash_recovery.py's crash run: `--kills` SIGKILLs during OTLP and webhook ingest.
4. tests/test_webhook_replay.py under pytest (it needs the in-process server of the test session).

Then it rewrites the part of docs/reliability.md between the `figures` markers (the rest of the page is prose)
and prints the same figures. Takes about ten minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.overload import OverloadReport
from bench.overload import run as overload_run

BEGIN = "<!-- figures:begin (written by python -m bench.reliability; edit the prose around it, not this) -->"
END = "<!-- figures:end -->"
ROOT = Path(__file__).resolve().parent.parent


def _commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    return done.stdout.strip() or "unknown"


def _overload_rows(label: str, report: OverloadReport) -> list[str]:
    queue = report.settings["CORRELATOR_QUEUE_MAX_RECORDS"]
    acknowledged_share = report.acknowledged_spans / max(report.produced_spans, 1)
    limit = report.memory_limit_mib
    checks = [
        "every acknowledged batch stored"
        if report.lost_acknowledged_batches == 0
        else f"**{report.lost_acknowledged_batches} acknowledged batches missing**",
        "stored = acknowledged"
        if report.stored_unacknowledged_batches == 0 and report.duplicate_batches == 0
        else f"**stored != acknowledged** ({report.stored_unacknowledged_batches} batches stored but never "
        f"acknowledged, {report.duplicate_batches} twice)",
        "RSS under the limit" if report.peak_rss_mib <= limit else "**RSS over the limit**",
    ]
    held = "; ".join(checks)
    return [
        f"| {label} (queue {queue:,} records) | {report.offered_rate:,.0f} spans/s offered for "
        f"{report.seconds:.0f} s ({report.factor:g}x {report.sustainable_rate:,.0f}); failed exports made again "
        f"until {report.resend_s:g} s after, as a collector retries | "
        f"{report.acknowledged_spans:,} acknowledged ({acknowledged_share:.0%} of offered), "
        f"{report.stored_spans:,} stored, {report.duplicate_batches} batches twice, "
        f"{report.stored_unacknowledged_batches} batches stored unacknowledged; "
        f"{report.overloaded_share:.0%} of answers 429/503; peak RSS {report.peak_rss_mib:,.0f} MiB "
        f"(limit {limit:,.0f}) | {held} |"
    ]


def _overload_block(label: str, report: OverloadReport) -> str:
    return f"#### {label}\n\n```\n{report.table()}\n```\n"


def _replay() -> tuple[str, float]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_webhook_replay.py"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    elapsed = time.monotonic() - started
    last = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr.strip()[-300:]
    outcome = re.sub(r" in [\d.]+s", "", last.strip("= "))
    return ("held" if done.returncode == 0 else "**failed**") + f" ({outcome})", elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60, help="how long each overload run pushes")
    parser.add_argument("--tight-limit-mib", type=int, default=1280, help="the memory limit of the second overload run")
    parser.add_argument("--kills", type=int, default=10, help="SIGKILLs in the crash run")
    parser.add_argument("--seed", type=int, default=None, help="the crash run's seed (default: the test's)")
    parser.add_argument("--skip-overload", action="store_true")
    parser.add_argument("--skip-crash", action="store_true")
    parser.add_argument("--skip-replay", action="store_true")
    parser.add_argument("--doc", type=Path, default=ROOT / "docs" / "reliability.md")
    args = parser.parse_args()

    started = datetime.datetime.now(datetime.UTC)
    load_before = os.getloadavg()[0]
    rows: list[str] = []
    blocks: list[str] = []
    with tempfile.TemporaryDirectory(prefix="correlator-reliability-") as scratch:
        workdir = Path(scratch)
        if not args.skip_overload:
            (workdir / "default").mkdir()
            default = overload_run(workdir / "default", seconds=args.seconds)
            print(default.table(), flush=True)
            rows += _overload_rows("Overload, default settings", default)
            blocks.append(_overload_block("Overload with the default settings", default))
            (workdir / "tight").mkdir()
            tight = overload_run(
                workdir / "tight",
                seconds=args.seconds,
                rate=default.sustainable_rate,
                rate_source="the probe above",
                memory_limit_mib=args.tight_limit_mib,
                probe_peak_mib=default.probe_peak_rss_mib,
            )
            print(tight.table(), flush=True)
            rows += _overload_rows(f"Overload, memory limit {args.tight_limit_mib:,} MiB", tight)
            title = f"The same offered rate with a {args.tight_limit_mib:,} MiB memory limit"
            blocks.append(_overload_block(title, tight))
        if not args.skip_crash:
            from tests.test_crash_recovery import SEED, crash_run

            (workdir / "crash").mkdir()
            crash = crash_run(workdir / "crash", seed=args.seed if args.seed is not None else SEED, kills=args.kills)
            held = not (crash.lost_requests or crash.partial_requests or crash.lost_webhooks or crash.missing_lookup)
            rows.append(
                f"| Crash run: SIGKILL during ingest, restart on the same store | {crash.kills} kills (seed "
                f"{crash.seed}), {crash.otlp_requests} OTLP requests of 100 spans and {crash.webhooks} webhooks "
                f"in {crash.seconds:.0f} s; unacknowledged ones resent after each restart | "
                f"{crash.spans_acknowledged:,} spans acknowledged, {crash.spans_stored:,} stored "
                f"({crash.duplicate_requests} requests stored twice by a resend), {len(crash.lost_requests)} "
                f"acknowledged requests lost, {len(crash.partial_requests)} stored in part, "
                f"{len(crash.lost_webhooks)} acknowledged webhooks lost, {crash.duplicate_records} duplicate "
                f"records | {'held' if held else '**failed**'} |"
            )
            blocks.append(f"#### Crash run\n\n```\n{crash.summary()}\nkill moments (s after the round's first "
                          f"acknowledgement): {crash.kill_delays_s}\n```\n")  # fmt: skip
        if not args.skip_replay:
            outcome, elapsed = _replay()
            rows.append(
                "| Webhook replay property (hypothesis, 12 streams, derandomized) | each stream delivered, "
                "delivered again, and delivered reordered to other services | "
                f"the same deploy and incident listings every time; {elapsed:.0f} s | {outcome} |"
            )

    header = (
        f"Last run: {started:%Y-%m-%d %H:%M} UTC, commit {_commit()}, {os.cpu_count()} cores, load average "
        f"{load_before:.1f} when it began (other work shared the machine). Command: `python -m bench.reliability`."
    )
    table = ["| what | tried | result | held? |", "| --- | --- | --- | --- |", *rows]
    section = "\n".join([BEGIN, "", header, "", *table, "", *blocks, END])
    print(section)
    doc = args.doc
    text = doc.read_text() if doc.exists() else f"# Reliability\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text or END not in text:
        text = text.rstrip("\n") + f"\n\n{BEGIN}\n{END}\n"
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.DOTALL)
    doc.write_text(pattern.sub(lambda _: section, text, count=1))
    print(f"wrote {doc}")


if __name__ == "__main__":
    main()
