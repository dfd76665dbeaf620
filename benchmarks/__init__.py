"""spikard's benchmark suite: a raw-socket load generator, peer echo servers, a runner.

Run it with ``python -m benchmarks.run`` (see ``docs/benchmarks.md``).
"""
