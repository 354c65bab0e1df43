"""Benchmarks: speed figures of the engine (and, for comparison, its peers). Dev tools, not part of the
app."""
