"""ddsp-demucs: refine Demucs vocal stems with a residual Differentiable DSP model."""

__version__ = "0.1.0"


class DDSPDemucsError(Exception):
    """An error meant for the user: the CLI prints its message as one line and exits non-zero."""


class InputError(DDSPDemucsError):
    """A bad input file or argument (missing, corrupt, silent, too short, NaN, wrong shape...)."""
