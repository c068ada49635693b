"""The correlator: links logs, metrics and traces by trace id, service and deploy id."""

import os

__version__ = "0.1.0"

# The embedded engine's allocator (jemalloc inside chDB) keeps freed pages for 5 s as chDB builds it; under steady
# ingest that held 40 to 160 MiB more resident than 1 s, and 1 s another 55 to 80 MiB more than 250 ms, at the same
# insert rate within the noise (docs/benchmarks.md); 0 costs a third of the rate. It reads this when the engine
# loads, which every use of the store comes after; a value already set wins.
os.environ.setdefault("JE_MALLOC_CONF", "dirty_decay_ms:250,muzzy_decay_ms:0")
