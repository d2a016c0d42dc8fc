"""Deprecated import path, kept for the original quick-start: the module is :mod:`ddsp_demucs.core.utils`."""

from ddsp_demucs.core.utils import *  # noqa: F403
