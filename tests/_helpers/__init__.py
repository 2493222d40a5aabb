"""Shared test helpers: the scipy/numpy oracles, the op runner across devices x dtypes x
chunking, and a memory meter."""
