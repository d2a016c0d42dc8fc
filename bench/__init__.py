"""Benchmarks (``make bench``); each module writes ``bench/results/<name>.json``."""
