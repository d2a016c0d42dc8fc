"""Data: track sources (MUSDB18-HQ, folders of songs, the synthetic corpus, real remixes) and the dataset.

Track sources live in :mod:`ddsp_demucs.corpus.sources`, the window dataset (building and reading shards) in
:mod:`ddsp_demucs.data.dataset`; their public names are re-exported here.
"""

from ddsp_demucs.corpus.sources import (
    MUSDB_STEMS,
    MUSDB_VALIDATION_TRACKS,
    REMIX_VOCALS,
    SAMPLE_RATE,
    Track,
    TrackList,
    check_track,
    folder_tracks,
    load_track_audio,
    loop_to_length,
    make_remix,
    musdb_tracks,
    read_f0_csv,
    remix_tracks,
    validation_track_names,
    vocal_to_accompaniment_db,
)
from ddsp_demucs.data.dataset import (
    DatasetReport,
    SeparatorMixDataset,
    ShardDataset,
    assign_splits,
    build_dataset_from_segments,
    load_dataset,
)

__all__ = [
    "DatasetReport",
    "SeparatorMixDataset",
    "ShardDataset",
    "assign_splits",
    "build_dataset_from_segments",
    "load_dataset",
    "MUSDB_STEMS",
    "MUSDB_VALIDATION_TRACKS",
    "REMIX_VOCALS",
    "SAMPLE_RATE",
    "Track",
    "TrackList",
    "check_track",
    "folder_tracks",
    "load_track_audio",
    "loop_to_length",
    "make_remix",
    "musdb_tracks",
    "read_f0_csv",
    "remix_tracks",
    "validation_track_names",
    "vocal_to_accompaniment_db",
]
