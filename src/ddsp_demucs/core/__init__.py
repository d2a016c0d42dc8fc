"""Shared by every stage: the config dataclasses (``config``), reading and writing audio (``audio_io``), logging,
atomic writes and config files (``utils``)."""
