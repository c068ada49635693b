"""The long fuzzing run: millions of generated and mutated bodies through the OTLP decoders and the mapping to rows.

In-process, no server: each worker process draws bodies with the suite's generators (tests/test_fuzz_parsers.py,
driven by a seeded `random.Random` instead of hypothesis) for traces, logs and metrics in turn, as protobuf or
OTLP JSON, plain or gzip, or as raw bytes, and checks the same property as the suite: a 4xx CorrelatorError, or a
request that maps to storable rows and whose protobuf serialization decodes again. Every failing body is written
to --out with its signal and encoding, so it can become a fixed example.

    .venv/bin/python -m bench.fuzz_long --inputs 1000000 --workers 2 --seed 1

Prints one JSON line: inputs, seconds, inputs/s, accepted, refused, failures (and their distinct kinds).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import sys
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

from correlator.otlp.decode import Signal
from tests.test_fuzz_parsers import Chooser, check_otlp, otlp_body

SIGNALS = tuple(Signal)


def _kind(error: BaseException) -> str:
    """A failure's kind: the exception type and where it was raised, so duplicates count once."""
    cause = error.__cause__ or error
    frame = traceback.extract_tb(cause.__traceback__)[-1] if cause.__traceback__ else None
    where = f"{Path(frame.filename).name}:{frame.lineno}" if frame else "?"
    return f"{type(cause).__name__} at {where}: {str(cause)[:120]}"


def work(worker: int, inputs: int, seed: int, out: str) -> dict[str, Any]:
    """Check `inputs` bodies drawn from the worker's own seed; return the counts and the failure kinds."""
    chooser = Chooser(random.Random(seed * 1000 + worker))
    accepted = refused = 0
    failures: Counter[str] = Counter()
    started = time.perf_counter()
    for number in range(inputs):
        if number and number % 50_000 == 0:
            rate = number / (time.perf_counter() - started)
            print(f"worker {worker}: {number} inputs, {rate:.0f}/s, {sum(failures.values())} failures", file=sys.stderr)
        signal = SIGNALS[number % len(SIGNALS)]
        body, encoding, content_encoding = otlp_body(chooser, signal)
        try:
            if check_otlp(signal, body, encoding, content_encoding):
                accepted += 1
            else:
                refused += 1
        except Exception as error:
            kind = _kind(error)
            if not failures[kind]:
                name = f"w{worker}-{number}-{signal.value}-{encoding.name.lower()}-{content_encoding or 'plain'}.bin"
                (Path(out) / name).write_bytes(body)
            failures[kind] += 1
    return {"accepted": accepted, "refused": refused, "failures": dict(failures)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inputs", type=int, default=1_000_000, help="bodies in all (default 1000000)")
    parser.add_argument("--workers", type=int, default=2, help="processes (default 2, the machine's cores)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default="fuzz-failures", help="where failing bodies are written")
    args = parser.parse_args(argv)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    shares = [args.inputs // args.workers + (1 if w < args.inputs % args.workers else 0) for w in range(args.workers)]
    started = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
        results = pool.starmap(work, [(w, shares[w], args.seed, args.out) for w in range(args.workers)])
    seconds = time.perf_counter() - started
    failures: Counter[str] = Counter()
    for result in results:
        failures.update(result["failures"])
    report = {
        "inputs": args.inputs,
        "workers": args.workers,
        "seed": args.seed,
        "seconds": round(seconds, 1),
        "inputs_per_s": round(args.inputs / seconds),
        "accepted": sum(r["accepted"] for r in results),
        "refused": sum(r["refused"] for r in results),
        "failures": sum(failures.values()),
        "failure_kinds": dict(failures),
    }
    print(json.dumps(report))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
