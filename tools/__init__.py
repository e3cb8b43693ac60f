"""Development tooling kept out of the `recsys` package (and so out of the Space upload): the benchmark suites
and their report (tools/bench). Run from the repository root, e.g. `python scripts/benchmark.py SUITE`."""
