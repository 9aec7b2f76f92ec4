"""
Benchmark suites for ``neural-ae bench``.

Each module defines ``run(quick: bool) -> dict`` returning JSON-serialisable figures.
Timings are reported together with a reference measured in the same run, as ratios.
"""
