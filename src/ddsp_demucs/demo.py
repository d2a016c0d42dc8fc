"""The end-to-end demo: every stage of the pipeline on the embedded synthetic corpus, in one run directory.

Stages (each reuses its finished work on a re-run, so an interrupted demo resumes where it stopped):

1. ``corpus``    the synthetic multitrack songs (``config.corpus``) in the MUSDB18-HQ layout;
2. ``separate``  vocals by the chosen separator (``auto``: htdemucs when its weights load, else the fallback), and
   each training song once more by one of ``config.corpus.training_separators`` in turn (separations of other
   qualities, e.g. the oracle family, which reads the corpus' true stems: :func:`training_separations`);
3. ``features``  F0, confidence, loudness and the segment gate, per separator;
4. ``dataset``   the window shards (train / validation / test by song), per separator;
5. ``train``     the residual DDSP model on the windows of every separator drawn together (resumes from its last
   checkpoint);
6. ``evaluate``  baseline (separated) vs refined on the held-out test songs: ``summary.json``, plots,
   ``report.html``.

Layout of ``out_dir``: ``corpus/``, ``stems/<separator>/``, ``features/<separator>/``, ``dataset/`` (the chosen
separator's), ``dataset-<separator>/`` (each training separator's), ``train/``, ``evaluation/``, and at the top
``report.html``, ``summary.json`` and ``model.ckpt`` (the checkpoint evaluated).
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from ddsp_demucs import DDSPDemucsError
from ddsp_demucs.core.config import Config
from ddsp_demucs.core.utils import atomic_path, get_logger

log = get_logger(__name__)


@dataclass
class DemoResult:
    """What :func:`run_demo` produced: the top-level files, the separator used and the headline figures."""

    out_dir: Path
    separator: str
    summary: dict
    report: Path
    checkpoint: Path
    stage_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def improved(self) -> bool:
        """Whether the median SI-SDR improvement over the separator is above 0 dB."""
        return float(self.summary["si_sdr"]["improvement_median"]) > 0.0


class _Stages:
    """Runs named stages in order, logging each and recording its wall time."""

    def __init__(self, n_stages: int):
        self.n_stages, self.index, self.seconds = n_stages, 0, {}

    def run(self, name: str, what: str, fn, *args, **kwargs):
        self.index += 1
        log.info("[%d/%d] %s: %s", self.index, self.n_stages, name, what)
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        self.seconds[name] = round(time.perf_counter() - start, 2)
        log.info("[%d/%d] %s done in %.1f s", self.index, self.n_stages, name, self.seconds[name])
        return result


def training_separations(tracks, separators: list[str]) -> dict[str, list]:
    """Which training songs each of ``separators`` separates: song ``i`` (in name order) by ``separators[i % n]``,
    so that every song is heard at two qualities and every separator on its share of the songs."""
    ordered = sorted(tracks, key=lambda track: track.name)
    shares = {name: ordered[k :: len(separators)] for k, name in enumerate(separators)}
    return {name: songs for name, songs in shares.items() if songs}


def run_demo(
    config: Config,
    out_dir: str | os.PathLike = "runs/demo",
    *,
    separator: str | None = None,
    demucs_repo: str | os.PathLike | None = None,
    progress: bool = True,
) -> DemoResult:
    """Run (or resume) the whole pipeline on the synthetic corpus described by ``config.corpus``.

    ``separator`` overrides ``config.data.separator`` (``auto``, a Demucs model name or ``fallback``);
    ``demucs_repo`` a local folder of Demucs weights. Raises :class:`DDSPDemucsError` when a stage cannot go on
    (for instance no window passes the gate).
    """
    from ddsp_demucs.core.utils import write_json_atomic
    from ddsp_demucs.corpus.synthetic import write_corpus
    from ddsp_demucs.data import SeparatorMixDataset, build_dataset_from_segments, load_dataset, musdb_tracks
    from ddsp_demucs.evaluation import evaluate_model, plot_evaluation_results, summarize, write_report
    from ddsp_demucs.features import run_features
    from ddsp_demucs.separation.cache import separate_tracks
    from ddsp_demucs.separation.demucs import get_separator
    from ddsp_demucs.training.checkpoints import load_model
    from ddsp_demucs.training.trainer import train_from_config

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cc, dc = config.corpus, config.data
    stages = _Stages(6)

    corpus_dir = out / "corpus"
    stages.run(
        "corpus",
        f"{cc.n_train} training ({cc.n_valid} of them for validation) and {cc.n_test} test songs "
        f"of {cc.duration_s:g} s",
        write_corpus,
        corpus_dir,
        cc.n_train,
        cc.n_test,
        cc.duration_s,
        cc.seed,
        n_valid=cc.n_valid,
        progress=progress,
    )

    sep = get_separator(separator or dc.separator, repo=demucs_repo or dc.demucs_repo)
    if sep.name == "fallback":
        log.warning(
            "separating with the weight-free fallback (REPET-SIM), not Demucs: the baseline and the "
            "refinement are judged against this much weaker separator (pass --demucs-repo DIR for htdemucs)"
        )
    stems_dir = out / "stems"
    shares = training_separations(musdb_tracks(corpus_dir, subsets=("train",)), list(cc.training_separators))
    extra = [(get_separator(name), tracks) for name, tracks in shares.items()]  # (separator, its training songs)
    names = [sep.name, *(extra_sep.name for extra_sep, _ in extra)]
    if sep.name in names[1:]:
        raise DDSPDemucsError(f"corpus.training_separators: {sep.name!r} is already the demo's separator")

    def separate() -> list:
        failures = separate_tracks(musdb_tracks(corpus_dir), sep, stems_dir, progress=progress)
        for extra_sep, tracks in extra:
            failures += separate_tracks(tracks, extra_sep, stems_dir, progress=progress)
        return failures

    also = f", and each training song by one of {', '.join(names[1:])} in turn" if extra else ""
    failures = stages.run("separate", f"vocals by {sep.name!r}{also}", separate)
    if failures:
        raise DDSPDemucsError("separation failed for: " + "; ".join(str(f) for f in failures))

    features_dir = out / "features"

    def features() -> list:
        return [run_features(stems_dir, name, features_dir, config, progress=progress) for name in names]

    reports = stages.run("features", "F0, confidence, loudness and the segment gate", features)
    for name, report in zip(names, reports):
        if report.skipped or not report.n_accepted:
            raise DDSPDemucsError(
                f"features of {name}: {len(report.skipped)} track(s) skipped, {report.n_accepted} window(s) "
                "accepted by the gate; see the log above"
            )

    dataset_dirs = [out / "dataset", *(out / f"dataset-{name}" for name in names[1:])]

    def datasets() -> None:
        for name, report, folder in zip(names, reports, dataset_dirs):
            build_dataset_from_segments(
                report.segments_csv,
                stems_dir / name,
                corpus_dir,
                folder,
                train_sr=dc.train_sr,
                win_s=dc.win_s,
                hop_s=dc.hop_s,
                config=config,
                progress=progress,
            )

    stages.run("dataset", f"{dc.win_s:g} s windows at {dc.train_sr} Hz", datasets)

    def drawn_together(split: str) -> SeparatorMixDataset:
        """The split's windows of every separator (a training separator whose songs hold none left out)."""
        main, *others = (load_dataset(folder, split) for folder in dataset_dirs)
        return SeparatorMixDataset([main, *(d for d in others if len(d))])

    train_ds, val_ds, test_ds = (
        drawn_together("train"),
        drawn_together("validation"),
        load_dataset(dataset_dirs[0], "test"),
    )

    result = stages.run(
        "train",
        f"{config.model.composition} model, {config.training.max_steps} steps",
        train_from_config,
        config,
        train_ds,
        val_ds,
        out / "train",
        resume=True,
        enable_progress_bar=progress,
    )
    checkpoint = out / "model.ckpt"
    with atomic_path(checkpoint) as tmp:
        shutil.copyfile(result["best_checkpoint"], tmp)

    def evaluate() -> tuple[dict, Path]:
        model = load_model(checkpoint)
        results = evaluate_model(model, test_ds, progress=progress)
        summary = summarize(results)
        eval_dir = out / "evaluation"
        images = plot_evaluation_results(results, eval_dir / "evaluation.png")
        write_json_atomic(out / "summary.json", summary)
        return summary, write_report(out, summary, results, title="ddsp-demucs demo", images=images)

    summary, report_path = stages.run(
        "evaluate", f"{len(test_ds)} windows of the {len(test_ds.tracks)} held-out songs", evaluate
    )
    return DemoResult(out, sep.name, summary, report_path, checkpoint, stages.seconds)


__all__ = ["DemoResult", "run_demo"]
