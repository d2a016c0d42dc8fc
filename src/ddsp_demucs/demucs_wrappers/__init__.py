"""Deprecated import path, kept for the original quick-start: the module is :mod:`ddsp_demucs.separation.demucs`."""

from ddsp_demucs.separation.demucs import *  # noqa: F403
