"""ccmon's tests, a package importable from the repository root (pytest's `pythonpath`):
`unit/` needs no server and no subprocess, `integration/` starts real servers or ccmon
processes, `support/` holds the helpers both (and `bench/`) import, `data/` their files."""
