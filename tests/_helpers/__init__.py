"""Shared test helpers, one home each: the scipy/numpy oracles, the op runner across
devices x dtypes x chunking, a memory meter, the CUDA sync guard, the explain-module
calls (CLI arguments, CLI run, API run) and file helpers (folder snapshot, GTF writer)."""
