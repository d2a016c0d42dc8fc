"""The real-singing corpus (`corpus --kind remix`): the plan on the full index (split by singer, enough test songs),
and a build from a small index of real files (ratios, exact stems, multitracks, resumption, manifest)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from helpers import SMALL_SPLIT

from ddsp_demucs.cli import build_parser
from ddsp_demucs.cli import main as cli_main
from ddsp_demucs.corpus.augment import EQ_DB
from ddsp_demucs.corpus.real_corpus import RATIOS_DB, plan_corpus, read_index, split_singers, write_real_corpus
from ddsp_demucs.data import musdb_tracks, vocal_to_accompaniment_db


def small_cli_args(shared) -> list[str]:
    """``corpus --kind remix`` options for the small index: one accompaniment and one synthetic band per vocal,
    the split of :data:`SMALL_SPLIT`."""
    return [
        "--shared-data",
        str(shared),
        "--accompaniments-per-vocal",
        "1",
        "--synthetic-bands",
        "1",
        "--min-test-singers",
        "2",
        "--min-test-vocals",
        "2",
        "--valid-singers",
        "1",
    ]


def test_plan_of_the_full_index_splits_by_singer(shared_data):
    entries = read_index(shared_data)
    plans = plan_corpus(entries)
    assert plans == plan_corpus(read_index(shared_data))  # deterministic
    singers = {s: {p.vocal.singer for p in plans if p.split == s} for s in ("train", "valid", "test")}
    assert not (
        singers["train"] & singers["valid"] or singers["train"] & singers["test"] or singers["valid"] & singers["test"]
    )
    test = [p for p in plans if p.split == "test"]
    assert len(test) >= 12 and len(singers["test"]) >= 4
    vocals = {e.path for e in entries if e.kind == "vocal"}
    assert {p.vocal.path for p in plans} == vocals  # every real vocal is used
    assert {p.ratio_db for p in plans} == set(RATIOS_DB) | {None}  # None: the multitracks
    multitracks = {p.vocal.path for p in plans if p.accompaniment == "multitrack"}
    assert multitracks == {
        "musdb18_sample/music_delta_80s_rock/vocals.flac",
        "real_stems/saraga_carnatic__bhuvini_dasudane/vocals.flac",
    }
    assert len({p.name for p in plans}) == len(plans)


def test_split_singers_meets_the_minimum_and_changes_with_the_seed(shared_data):
    vocals = [e for e in read_index(shared_data) if e.kind == "vocal"]
    for seed in range(4):
        split = split_singers(vocals, seed=seed, min_test_singers=4, min_test_vocals=6, n_valid_singers=2)
        test = [s for s, v in split.items() if v == "test"]
        assert len(test) >= 4 and sum(1 for v in vocals if split[v.singer] == "test") >= 6
        assert sum(1 for v in split.values() if v == "valid") == 2
    assert len({tuple(sorted(split_singers(vocals, seed=s).items())) for s in range(4)}) > 1


def test_small_build_ratios_stems_multitracks_and_manifest(small_corpus):
    shared, out, tracks = small_corpus
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "real" and not tracks.skipped
    assert len(tracks) == len(manifest["tracks"]) == 5 + 2  # 5 vocals x 1 accompaniment + 2 multitracks
    by_split = {s: {t.name for t in musdb_tracks(out, split=s)} for s in ("train", "valid", "test")}
    assert set(by_split["valid"]) == set(manifest["validation_tracks"])
    for split, key in (("train", "train"), ("valid", "validation"), ("test", "test")):
        assert {manifest["tracks"][n]["singer"] for n in by_split[split]} == set(manifest["singers"][key])
    for track in tracks:
        info = manifest["tracks"][track.name]
        stems = track.stems()
        accompaniment = sum(v for k, v in stems.items() if k != "vocals")
        np.testing.assert_allclose(track.mixture(), accompaniment + stems["vocals"], atol=3e-7)  # 24-bit steps
        if info["ratio_db"] is not None:
            assert vocal_to_accompaniment_db(stems["vocals"], accompaniment) == pytest.approx(
                info["ratio_db"], abs=0.01
            )
            assert set(stems) == {"other", "vocals"}
        else:
            assert len(stems) >= 2 and "vocals" in stems
        vocal, sr = sf.read(shared / info["vocal"], always_2d=True)
        assert track.mixture().shape[0] == int(np.ceil(vocal.shape[0] * 44100 / sr))  # full length
    night_owl = next(t for t in tracks if "NightOwl" in t.name)  # its F0 annotation is copied
    assert night_owl.f0_path is not None and night_owl.f0()[0].max() < 2.0


def test_rebuild_keeps_finished_songs_and_the_cli_writes_the_same(small_corpus, tmp_path):
    shared, out, _ = small_corpus
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.flac")}
    write_real_corpus(out, shared, accompaniments_per_vocal=1, n_synthetic_bands=1, **SMALL_SPLIT)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    again = tmp_path / "again"
    assert (
        cli_main(
            [
                "corpus",
                "--kind",
                "remix",
                "--out",
                str(again),
                *small_cli_args(shared),
            ]
        )
        == 0
    )
    for path in stamps:
        rel = path.relative_to(out)
        np.testing.assert_array_equal(sf.read(again / rel)[0], sf.read(path)[0])
    assert (
        json.loads((again / "manifest.json").read_text())["tracks"]
        == json.loads((out / "manifest.json").read_text())["tracks"]
    )


def test_augmented_plan_adds_training_versions_only_and_keeps_the_rest(shared_data):
    entries = read_index(shared_data)
    plain, augmented = plan_corpus(entries), plan_corpus(entries, augmentations_per_vocal=2)
    assert [p for p in augmented if p.augmentation is None] == plain  # the unaugmented corpus unchanged
    extra = [p for p in augmented if p.augmentation is not None]
    assert extra and {p.split for p in extra} == {"train"}
    train_vocals = {p.vocal.path for p in plain if p.split == "train" and p.ratio_db is not None}
    assert len(extra) == 2 * 2 * len(train_vocals)  # 2 draws x 2 accompaniments
    assert len({p.name for p in augmented}) == len(augmented)
    draws = {p.vocal.path: set() for p in extra}
    for p in extra:
        draws[p.vocal.path].add(p.augmentation)
    assert all(len(d) == 2 for d in draws.values())  # two different draws per vocal
    assert augmented == plan_corpus(read_index(shared_data), augmentations_per_vocal=2)  # deterministic
    with pytest.raises(ValueError, match="augmentation_eq_db >= 0"):  # checked even when nothing is augmented
        plan_corpus(entries, augmentation_eq_db=-1.0)


def test_augmented_build_records_the_draw_and_mixes_at_the_ratio(small_corpus, tmp_path):
    shared, _, _ = small_corpus
    out = tmp_path / "aug"
    assert (
        cli_main(
            [
                "corpus",
                "--kind",
                "remix",
                "--out",
                str(out),
                *small_cli_args(shared),
                "--augment",
                "1",
                "--augment-eq-db",
                "9",
            ]
        )
        == 0
    )
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["augmentations_per_vocal"] == 1 and manifest["augmentation_eq_db"] == 9.0
    gains = [
        manifest["tracks"][t]["augmentation"][g]
        for t in manifest["tracks"]
        if "augmentation" in manifest["tracks"][t]
        for g in ("low_shelf_db", "peak_db", "high_shelf_db")
    ]
    assert gains and max(abs(g) for g in gains) <= 9.0
    augmented = [t for t in musdb_tracks(out) if "augmentation" in manifest["tracks"][t.name]]
    assert augmented and all(manifest["tracks"][t.name]["split"] == "train" for t in augmented)
    for track in augmented:
        request = json.loads((track.mixture_path.parent / "remix.json").read_text())
        assert request == {k: v for k, v in manifest["tracks"][track.name].items() if k != "vocal_entry"}
        stems = track.stems()
        assert vocal_to_accompaniment_db(stems["vocals"], stems["other"]) == pytest.approx(
            request["ratio_db"], abs=0.01
        )
        vocal, sr = sf.read(shared / request["vocal"], always_2d=True)
        expected = vocal.shape[0] * 44100 / sr / request["augmentation"]["stretch"]
        assert abs(track.mixture().shape[0] - expected) < 0.002 * expected + 2048


def test_cli_equaliser_range_defaults_to_the_library_default():
    args = build_parser().parse_args(["corpus", "--kind", "remix", "--out", "x"])
    assert args.augment_eq_db == EQ_DB


@pytest.mark.parametrize(
    "flag, value",
    [("--augment", "-1"), ("--augment-eq-db", "-2"), ("--accompaniments-per-vocal", "0"), ("--max-test-takes", "0")],
)
def test_cli_bad_remix_numbers_are_one_line_errors(flag, value, tmp_path, capsys):
    out = tmp_path / "never"
    assert cli_main(["corpus", "--kind", "remix", "--out", str(out), flag, value]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and flag in err and "\n" not in err
    assert not out.exists()


def test_test_takes_per_singer_are_capped_and_the_held_out_takes_never_trained(shared_data):
    entries = read_index(shared_data)
    plans = plan_corpus(entries, min_test_singers=6, max_test_vocals_per_singer=2)
    test = [p for p in plans if p.split == "test"]
    takes: dict[str, set] = {}
    for p in test:
        takes.setdefault(p.vocal.singer, set()).add(p.vocal.path)
    assert len(takes) >= 6 and max(len(t) for t in takes.values()) <= 2
    singer_songs = [sum(1 for p in test if p.vocal.singer == s) for s in takes]
    assert max(singer_songs) / len(test) <= 0.30  # no test singer holds more than 30 % of the test songs
    trained = {p.vocal.singer for p in plans if p.split != "test"}
    assert not trained & set(takes)  # the takes left out are not moved to training
    assert plan_corpus(entries, min_test_singers=6, max_test_vocals_per_singer=2) == plans
