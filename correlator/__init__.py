"""The correlator: links logs, metrics and traces by trace id, service and deploy id."""

import os

__version__ = "0.1.0"

# The embedded engine's allocator (jemalloc inside chDB) keeps freed pages for 5 s as chDB builds it; under steady
# ingest that held 40 to 160 MiB more resident than 1 s does, at the same insert rate (docs/benchmarks.md). It
# reads this when the engine loads, which every use of the store comes after; a value already set wins.
os.environ.setdefault("JE_MALLOC_CONF", "dirty_decay_ms:1000,muzzy_decay_ms:0")
