"""`make bench`: the operator benchmarks (see run.py)."""
