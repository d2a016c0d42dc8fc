"""Separators: parity with demucs.api on a tiny local HTDemucs, offline failure, fallback quality, auto; model files
that hold anything beyond a Demucs model refused before they run."""

from __future__ import annotations

import logging
import os
import random
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from conftest import shared_file
from helpers_demucs import make_tiny_demucs_repo

from ddsp_demucs import InputError
from ddsp_demucs.core.audio_io import load_audio, save_audio
from ddsp_demucs.separation.demucs import (
    DemucsSeparator,
    FallbackSeparator,
    WeightsUnavailableError,
    get_separator,
    load_demucs_model,
    network_available,
    repeating_background,
    weights_digest,
)

NAME = "tiny_htdemucs"


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return make_tiny_demucs_repo(tmp_path_factory.mktemp("demucs_repo"), NAME)


@pytest.fixture(scope="module")
def api_separator(repo):
    import demucs.api

    return demucs.api.Separator(model=NAME, repo=repo, device="cpu")


def _mixture(n: int, channels: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 44100
    tone = 0.3 * np.sin(2 * np.pi * 220 * t)[:, None]
    return (tone + 0.05 * rng.standard_normal((n, channels))).astype(np.float32)


def _si_sdr(estimate: np.ndarray, reference: np.ndarray) -> float:
    e = estimate.astype(np.float64).ravel() - estimate.mean()
    r = reference.astype(np.float64).ravel() - reference.mean()
    target = (e @ r) / (r @ r) * r
    return float(10 * np.log10((target @ target) / ((e - target) @ (e - target))))


@pytest.mark.parametrize("shifts", [0, 1])
def test_stereo_parity_with_demucs_api(repo, api_separator, shifts):
    ours = DemucsSeparator(NAME, repo=repo, device="cpu", shifts=shifts)
    api_separator.update_parameter(shifts=shifts)
    mix = _mixture(44100 + 1234, 2)
    random.seed(7)
    got = ours.separate(mix, 44100)
    random.seed(7)
    _, expected = api_separator.separate_tensor(torch.from_numpy(mix.T.copy()), 44100)
    assert list(got) == ["drums", "bass", "other", "vocals"]
    for source, ref in expected.items():
        assert got[source].shape == mix.shape and got[source].dtype == np.float32
        np.testing.assert_allclose(got[source], ref.numpy().T, atol=1e-6, rtol=0)
    np.testing.assert_array_equal(ours.extract_vocals(mix) if shifts == 0 else got["vocals"], got["vocals"])


def test_mono_input_is_duplicated_and_averaged_back(repo, api_separator):
    ours = DemucsSeparator(NAME, repo=repo, device="cpu", shifts=0)
    api_separator.update_parameter(shifts=0)
    mono = _mixture(30000, 1, seed=1)
    got = ours.separate(mono, 44100)
    _, expected = api_separator.separate_tensor(torch.from_numpy(np.repeat(mono.T, 2, axis=0)), 44100)
    for source, ref in expected.items():
        assert got[source].shape == (30000, 1)
        np.testing.assert_allclose(got[source][:, 0], ref.numpy().mean(0), atol=1e-6, rtol=0)
    assert ours.extract_vocals(mono[:, 0], 44100).shape == (30000, 1)


def test_other_sample_rate_is_resampled_in_and_out(repo, api_separator):
    import julius

    ours = DemucsSeparator(NAME, repo=repo, device="cpu", shifts=0)
    api_separator.update_parameter(shifts=0)
    mix = _mixture(48000, 2, seed=2)
    got = ours.separate(mix, 48000)
    _, expected = api_separator.separate_tensor(torch.from_numpy(mix.T.copy()), 48000)  # at 44.1 kHz
    for source, ref in expected.items():
        back = julius.resample_frac(ref, 44100, 48000, output_length=48000).numpy().T
        assert got[source].shape == (48000, 2)
        np.testing.assert_allclose(got[source], back, atol=1e-6, rtol=0)


def test_signature_params_and_bad_input(repo):
    sep = DemucsSeparator(NAME, repo=repo, device="cpu")
    assert sep.name == NAME and sep.signature == f"{NAME}:7e57de3c@{weights_digest(sep.model)}"
    # weights retrained under the same signature in a local folder give another signature (caches redo them)
    with torch.no_grad():
        next(sep.model.parameters()).add_(1.0)
    assert weights_digest(sep.model) != sep.signature.split("@")[1]
    assert sep.params["shifts"] == 1 and sep.device == "cpu"
    for bad, match in [
        (np.zeros((0, 2)), "empty"),
        (np.full((100, 2), np.nan), "NaN"),
        (np.zeros((2, 1000)), "transpose"),
        (np.zeros((10, 10, 2)), "shape"),
        (np.zeros((1000, 6)), "1 or 2 channels"),
    ]:
        with pytest.raises(InputError, match=match):
            sep.separate(bad, 44100)
    with pytest.raises(InputError, match="sample_rate"):
        sep.separate(np.zeros((100, 2)), 0)
    with pytest.raises(ValueError, match="overlap"):
        DemucsSeparator(NAME, repo=repo, overlap=1.5)


def test_local_repo_without_the_model_names_what_it_found(repo, tmp_path):
    with pytest.raises(WeightsUnavailableError, match=r"no model named 'htdemucs_ft'.*tiny_htdemucs.yaml"):
        DemucsSeparator("htdemucs_ft", repo=repo)
    with pytest.raises(WeightsUnavailableError, match="not a folder.*--separator fallback"):
        DemucsSeparator("htdemucs", repo=tmp_path / "missing")


class _RunsAShellCommand:
    """Pickles as a call to ``os.system``: what a crafted model file would run when unpickled."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_model_file_that_would_run_code_is_refused_before_it_runs(repo, tmp_path):
    evil = tmp_path / "evil"
    evil.mkdir()
    package = torch.load(next(repo.glob("*.th")), map_location="cpu", weights_only=False)  # the test's own file
    package["training_args"] = _RunsAShellCommand(tmp_path / "ran")
    torch.save(package, evil / "deadbeef.th")
    with pytest.raises(WeightsUnavailableError, match="deadbeef.th: refused: .*system") as error:
        DemucsSeparator("deadbeef", repo=evil)
    assert not (tmp_path / "ran").exists() and "\n" not in str(error.value)
    (evil / "deadbeef.th").write_bytes(b"not a package")
    with pytest.raises(WeightsUnavailableError, match="deadbeef.th: not a readable Demucs model package"):
        DemucsSeparator("deadbeef", repo=evil)
    torch.save({"state": {}}, evil / "deadbeef.th")  # weights-only readable, but no Demucs class
    with pytest.raises(WeightsUnavailableError, match="not a Demucs model package"):
        DemucsSeparator("deadbeef", repo=evil)


def test_a_bag_listing_a_missing_model_and_a_replaced_cached_file_are_refused(repo, tmp_path, monkeypatch):
    bag = tmp_path / "bag"
    bag.mkdir()
    (bag / "pair.yaml").write_text("models: [7e57de3c, 0ther5ig]\n")
    for th in repo.glob("*.th"):
        (bag / th.name).write_bytes(th.read_bytes())
    with pytest.raises(WeightsUnavailableError, match="pair.yaml: lists 0ther5ig"):
        DemucsSeparator("pair", repo=bag)
    # a file in the torch hub cache under the name of Meta's htdemucs weights whose digest is not the one its name
    # gives is not loaded
    from demucs.pretrained import REMOTE_ROOT, _parse_remote_files

    url = _parse_remote_files(REMOTE_ROOT / "files.txt")["955717e8"]
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    cached = tmp_path / "hub" / "checkpoints" / os.path.basename(url)
    cached.parent.mkdir(parents=True)
    cached.write_bytes(next(repo.glob("*.th")).read_bytes())
    with pytest.raises(WeightsUnavailableError, match="[Ii]nvalid checksum"):
        load_demucs_model("955717e8")


def test_network_probe_fails_fast_for_unresolvable_host(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    for var in ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    assert network_available(("https://host.invalid",), timeout=2.0) is False
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert network_available() is False


def test_offline_without_cache_fails_with_one_helpful_message(tmp_path):
    """The real CLI process, with empty caches and the network made unreachable (a refused proxy)."""
    song = tmp_path / "song.wav"
    save_audio(song, _mixture(4410, 2), 44100)
    env = dict(
        os.environ,
        HOME=str(tmp_path),
        HF_HOME=str(tmp_path / "hf"),
        TORCH_HOME=str(tmp_path / "torch"),
        XDG_CACHE_HOME=str(tmp_path / "cache"),
        HTTPS_PROXY="http://127.0.0.1:9",
        https_proxy="http://127.0.0.1:9",
        HTTP_PROXY="http://127.0.0.1:9",
        NO_PROXY="",
        no_proxy="",
    )
    env.pop("HF_HUB_OFFLINE", None)
    start = time.monotonic()
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from ddsp_demucs.cli import main; sys.exit(main())",
            "separate",
            "--songs",
            str(song),
            "--separator",
            "htdemucs_ft",
            "--stems-dir",
            str(tmp_path / "stems"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    elapsed = time.monotonic() - start
    print(f"offline failure took {elapsed:.1f} s (process start included)")
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    assert "offline" in errors[0] and "--demucs-repo" in errors[0] and "--separator fallback" in errors[0]
    assert str(tmp_path / "hf") in errors[0]
    assert "Retrying" not in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "stems").exists()


def test_auto_uses_demucs_from_repo_or_falls_back_with_a_warning(repo, tmp_path, caplog):
    (tmp_path / "htdemucs.yaml").write_text((repo / f"{NAME}.yaml").read_text())
    for th in repo.glob("*.th"):
        (tmp_path / th.name).write_bytes(th.read_bytes())
    sep = get_separator("auto", repo=tmp_path, device="cpu", shifts=0)
    assert isinstance(sep, DemucsSeparator) and sep.name == "htdemucs"
    empty = tmp_path / "empty"
    empty.mkdir()
    with caplog.at_level(logging.WARNING, logger="ddsp_demucs"):
        fallback = get_separator("auto", repo=empty, shifts=2)
    assert isinstance(fallback, FallbackSeparator) and fallback.name == "fallback"
    assert any("weight-free 'fallback'" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    assert fallback.signature == "fallback-repet-sim-v1"
    assert isinstance(get_separator("fallback"), FallbackSeparator)


def test_repeating_background_recovers_a_repeating_pattern():
    rng = np.random.default_rng(0)
    pattern = rng.random((32, 10)).astype(np.float32)
    mag = np.tile(pattern, (1, 8))  # 80 frames, period 10
    mag_with_event = mag.copy()
    mag_with_event[:, 35] += 5.0  # a non-repeating event in one frame
    bg = repeating_background(mag_with_event, n_neighbors=5, min_gap=5, max_distance=40, block=16)
    np.testing.assert_allclose(bg, mag, atol=1e-6)


def test_fallback_beats_the_mixture_on_real_music():
    folder = shared_file("musdb18_sample/music_delta_80s_rock/mixture.flac").parent
    mix, sr = load_audio(folder / "mixture.flac")
    vocals, _ = load_audio(folder / "vocals.flac")
    sep = FallbackSeparator()
    out = sep.separate(mix, sr)
    assert out["vocals"].shape == mix.shape and out["vocals"].dtype == np.float32
    np.testing.assert_allclose(out["vocals"] + out["accompaniment"], mix, atol=1e-6)
    est, base = _si_sdr(out["vocals"], vocals), _si_sdr(mix, vocals)
    print(f"fallback vocals SI-SDR {est:.2f} dB vs mixture {base:.2f} dB")
    assert est > base
    assert sep.extract_vocals(mix[:, :1], sr).shape == (mix.shape[0], 1)
