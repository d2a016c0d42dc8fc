"""Deprecated import path, kept for the original quick-start: the package is :mod:`ddsp_demucs.evaluation`."""

from ddsp_demucs.evaluation import *  # noqa: F403
