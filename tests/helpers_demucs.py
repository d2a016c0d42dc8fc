"""A tiny randomly initialised HTDemucs saved in Demucs' own repo format, for tests that must not download.

``make_tiny_demucs_repo(folder, name="tiny_htdemucs")`` writes ``<sig>-<checksum>.th`` (the package
``demucs.states`` serialises: klass, args, kwargs, state) and ``<name>.yaml`` (a bag: ``models: [sig]``), so
``demucs.api.Separator(model=name, repo=folder)`` and ``DemucsSeparator(name, repo=folder)`` both load it.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import torch
import yaml

SOURCES = ["drums", "bass", "other", "vocals"]


def build_tiny_htdemucs(seed: int = 0, samplerate: int = 44100, segment_s: float = 1.0):
    """A ~79 k-parameter HTDemucs (4 sources, stereo) with random weights drawn from ``seed``; depth 3, so its
    transformer attends over short sequences (depth 2 made separation 5x slower)."""
    from demucs.htdemucs import HTDemucs

    torch.manual_seed(seed)
    model = HTDemucs(
        SOURCES,
        audio_channels=2,
        channels=8,
        growth=2,
        nfft=1024,
        depth=3,
        t_layers=1,
        t_heads=2,
        t_hidden_scale=1.0,
        dconv_depth=1,
        dconv_comp=4,
        bottom_channels=0,
        segment=Fraction(segment_s).limit_denominator(100),
        samplerate=samplerate,
    )
    return model.eval()


def make_tiny_demucs_repo(
    folder: str | Path, name: str = "tiny_htdemucs", seed: int = 0, sig: str = "7e57de3c"
) -> Path:
    """Save a tiny HTDemucs as ``<sig>-<sha256[:8]>.th`` plus the bag ``<name>.yaml`` in ``folder``."""
    from demucs.states import get_state, save_with_checksum

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model = build_tiny_htdemucs(seed)
    args, kwargs = model._init_args_kwargs
    package = {"klass": type(model), "args": args, "kwargs": kwargs, "state": get_state(model, None, half=False)}
    save_with_checksum(package, folder / f"{sig}.th")
    (folder / f"{name}.yaml").write_text(yaml.safe_dump({"models": [sig]}))
    return folder
