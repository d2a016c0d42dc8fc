"""The real ``ddsp-demucs`` process on bad input and after a kill: one line on stderr naming the file and the
problem, a non-zero exit, no traceback, and a re-run that finishes the job with valid files.

The per-command bad-input tables live beside each command's tests (test_refine: truncated, non-audio, empty,
silent, 0.2 s, NaN, 96 kHz 6-channel, missing files, a folder with bad files among good ones, missing and foreign
checkpoints, an unwritable output folder; test_features_pipeline, test_separation_cache, test_dataset,
test_evaluate, test_analysis, test_train); these run the installed console script itself.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import soundfile as sf
from helpers import CLI, run_cli

from ddsp_demucs.corpus.synthetic import write_corpus


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    """The last stderr line of a failed command, checked to be a one-line error without a traceback."""
    assert proc.returncode != 0, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert lines and lines[-1].startswith("error: "), proc.stderr
    return lines[-1]


def test_misspelt_config_key_is_one_line_naming_the_key(tmp_path):
    config = tmp_path / "typo.yaml"
    config.write_text("training:\n  learning_rat: 0.01\n")
    (tmp_path / "data").mkdir()
    for command in (
        ["train", "--config", config, "--data", tmp_path / "data", "--out", tmp_path / "run"],
        ["demo", "--config", config, "--out", tmp_path / "demo"],
    ):
        line = one_line_error(run_cli(*command))
        assert "learning_rat" in line and "typo.yaml" in line, line
    assert not (tmp_path / "run").exists() and not (tmp_path / "demo").exists()


def test_mistyped_override_is_one_line(tmp_path):
    (tmp_path / "data").mkdir()
    line = one_line_error(
        run_cli(
            "train",
            "--config",
            "configs/base.yaml",
            "--data",
            tmp_path / "data",
            "--out",
            tmp_path / "run",
            "training.batch_size=many",
        )
    )
    assert "training.batch_size" in line, line


def test_8khz_mono_song_is_refined_at_its_own_rate(tmp_path, checkpoint):
    t = np.arange(int(2.3 * 8000)) / 8000
    song = (0.3 * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t)))[:, None].astype(np.float32)
    sf.write(tmp_path / "phone.wav", song, 8000, subtype="PCM_16")
    proc = run_cli(
        "refine",
        tmp_path / "phone.wav",
        "--checkpoint",
        checkpoint,
        "--separator",
        "fallback",
        "--out",
        tmp_path / "out",
    )
    assert proc.returncode == 0, proc.stderr
    for name in ("separated_vocals.wav", "refined_vocals.wav"):
        info = sf.info(tmp_path / "out" / "phone" / name)
        assert (info.samplerate, info.channels, info.frames) == (8000, 1, song.shape[0])


def test_bad_song_among_good_ones_in_a_real_process(tmp_path, checkpoint):
    songs = tmp_path / "songs"
    songs.mkdir()
    t = np.arange(int(1.5 * 44100)) / 44100
    sf.write(songs / "good.wav", np.stack([0.2 * np.sin(2 * np.pi * 330 * t)] * 2, axis=1), 44100)
    (songs / "broken.wav").write_bytes(b"RIFF\x00\x00")
    proc = run_cli("refine", songs, "--checkpoint", checkpoint, "--separator", "fallback", "--out", tmp_path / "out")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert any("broken.wav" in ln for ln in proc.stderr.splitlines()), proc.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good"]


def _kill_when(proc: subprocess.Popen, ready, timeout: float = 120) -> None:
    start = time.monotonic()
    while not ready():
        assert proc.poll() is None, "the command ended before it could be killed"
        assert time.monotonic() - start < timeout, "the command made no progress"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def test_separate_and_features_killed_then_rerun_finish_with_valid_files(tmp_path):
    corpus, stems, feats = tmp_path / "corpus", tmp_path / "stems", tmp_path / "features"
    write_corpus(corpus, n_train=5, n_test=1, duration_s=4.0, seed=7)
    names = sorted(p.name for sub in ("train", "test") for p in (corpus / sub).iterdir())
    separate = [*CLI, "separate", "--musdb", str(corpus), "--separator", "fallback", "--stems-dir", str(stems)]
    proc = subprocess.Popen(separate, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _kill_when(proc, lambda: len(list(stems.glob("fallback/*/manifest.json"))) >= 2)
    assert proc.returncode == -signal.SIGKILL
    done_before = len(list(stems.glob("fallback/*/manifest.json")))
    rerun = run_cli(*separate[1:])
    assert rerun.returncode == 0, rerun.stderr
    assert f"{done_before} already done" in rerun.stderr or done_before == len(names)
    for name in names:
        manifest = json.loads((stems / "fallback" / name / "manifest.json").read_text())
        for stem in manifest["stems"]:
            audio, sr = sf.read(stems / "fallback" / name / f"{stem}.wav")
            assert sr == 44100 and audio.shape == (manifest["n_samples"], 2) and np.all(np.isfinite(audio))

    features = [
        *CLI,
        "features",
        "--stems-dir",
        str(stems),
        "--separator",
        "fallback",
        "--out",
        str(feats),
        "data.win_s=2.0",
    ]
    proc = subprocess.Popen(features, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _kill_when(proc, lambda: len(list(feats.glob("fallback/*.npz"))) >= 1)
    rerun = run_cli(*features[1:])
    assert rerun.returncode == 0, rerun.stderr
    from ddsp_demucs.features import load_features, read_segments_csv

    for name in names:
        assert load_features(feats / "fallback" / f"{name}.npz")["f0_hz"].shape == (4 * 250,)
    assert {r["track"] for r in read_segments_csv(feats / "fallback" / "accepted_segments.csv")} == set(names)


def test_version_and_help_import_no_heavy_module():
    """--version and every subcommand's --help answer without torch, scipy.signal, lightning or demucs (each
    takes seconds to import); what they print is checked too."""
    heavy = ("torch", "scipy.signal", "lightning", "demucs", "librosa", "pedalboard")
    script = (
        "import sys, contextlib, io\n"
        "from ddsp_demucs.cli import COMMANDS, main\n"
        "out = io.StringIO()\n"
        "for argv in [['--version'], ['--help']] + [[name, '--help'] for name, _, _ in COMMANDS]:\n"
        "    with contextlib.redirect_stdout(out):\n"
        "        try:\n"
        "            main(argv)\n"
        "        except SystemExit as exc:\n"
        "            assert exc.code == 0, (argv, exc.code)\n"
        f"print([m for m in {heavy!r} if m in sys.modules])\n"
        "print(out.getvalue().count('usage: ddsp-demucs'), 'ddsp-demucs 0.' in out.getvalue())\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    loaded, counts = run.stdout.strip().splitlines()[-2:]
    assert loaded == "[]"
    from ddsp_demucs.cli import COMMANDS

    assert counts == f"{len(COMMANDS) + 1} True"
