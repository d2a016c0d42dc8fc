"""Deprecated import path, kept for the original quick-start: the module is :mod:`ddsp_demucs.inference.refine`."""

from ddsp_demucs.inference.refine import *  # noqa: F403
