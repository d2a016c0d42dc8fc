"""Stage 2, the separated vocal: Demucs, the fallback and the weights discovery (``demucs``), oracle separators
of controlled quality (``oracle``) and the cache of separated stems (``cache``)."""
