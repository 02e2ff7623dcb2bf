"""Benchmarks, run as modules from the repository root (`python -m bench.throughput`), so
that they import the tests' helpers as the package `tests.support`; figures in
docs/benchmarks.md."""
