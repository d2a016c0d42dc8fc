"""Deprecated import path, kept for the original quick-start: the module is :mod:`ddsp_demucs.training.trainer`."""

from ddsp_demucs.training.trainer import *  # noqa: F403
