"""Separators with a network's own errors: ``make bench-network-separator`` (= ``python -m bench
network_separator``; ``python -m bench.network_separator --network small --minutes N`` for one network and
another budget).

Small Hybrid Transformer Demucs models (:class:`demucs.htdemucs.HTDemucs`, the architecture users run, with the two
sources :data:`SOURCES`; 0.8-1.4 M parameters instead of htdemucs' 42 M) are trained here on the training singers'
remixes of ``make bench-quality``'s corpus (``runs/quality/corpus``, the ``train`` split of its ``train`` folder;
never the held-out test singers' ``test`` folder), one per entry of :data:`NETWORKS`:

- ``small`` (``htdemucs_small_here``, 30 minutes, every training singer): ``bench/quality.py`` scores the
  refiners on its separations of the test songs as level ``network_small``; no refiner ever trains on it;
- ``half`` (``htdemucs_half_here``, another width and seed, 20 minutes, every other training singer): refiners
  learn from its separations of the training songs (``bench.quality.TRAINING_NETWORK``); half of them are songs of
  singers it never heard, as a user's songs are to a separator; ``bench/quality.py`` also scores refiners on its
  separations of the test songs (singers it never heard) as a second network level, ``network_half``;
- ``other`` (``htdemucs_other_here``, a third width and seed, 20 minutes, the other half of the training singers):
  held out of everything, no refiner learns from it and no setting is chosen on it; ``bench/quality.py`` scores
  refiners on its separations of the test songs as a third network level, ``network_other``.

Each: Adam, L1 on the waveforms of both sources, random crops of :data:`SEGMENT_S` seconds, each source's gain
drawn in [0.25, 1.25], half of the examples remixed (the vocals over another crop's accompaniment), left and right
swapped at random; for a wall-clock budget (the network's ``minutes``, or ``--minutes``) or a number of steps
(``--steps``), from the network's seed.

The training state is written every :data:`CHECKPOINT_MINUTES` minutes to ``<folder>/training/state.pt`` (with
the validation median SI-SDR of the model so far), so an interrupted run continues where it stopped. At the end
the model is written in Demucs' own package format (``klass``, ``args``, ``kwargs``, ``state``, as
``demucs.states.serialize_model`` writes it, in float32) to ``<folder>/<signature>.th``, where
``get_separator(signature, repo=folder)`` loads it (weights-only, as any local Demucs file), and the validation
singers' songs are separated by it: ``<folder>/summary.json`` holds the steps, minutes, parameters and their
median SI-SDR of the vocals (mono downmix). A finished network is not trained again.

Demucs' own signatures are 8 hex digits, but a local repo takes any file stem without ``-`` (a ``-`` starts
a checksum), so a signature names the model.

**Shipped networks.** Trained for a wall-clock budget, a network differs from machine to machine and run to run (its
separations of the test songs moved from 9.7 to 10.0 dB between two trainings of ``small``), and training the three
takes 70 minutes. So the networks ``bench/quality.py`` scores are shipped in :data:`SHIPPED` (``bench/networks/``):
each ``<signature>.safetensors`` in the format of Demucs' Hugging Face repositories, in float16 (loaded as float32),
with a card ``<signature>.json`` (how it was trained, its validation figures as trained and as shipped, the data's
licence, ``LICENSE-weights.md`` beside them). :func:`separator_repo` prefers them to this machine's training.
``python -m bench.network_separator --install`` (after training) replaces the shipped files with this machine's
networks; without ``--install`` a finished training is compared with the shipped network on the validation songs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "runs" / "quality" / "corpus"
OUT_DIR = ROOT / "runs" / "quality" / "network_separator"
SHIPPED = ROOT / "bench" / "networks"  # the networks bench-quality scores (module doc)
SHIPPED_DTYPE = torch.float16
LICENCE = (
    "weights learned from recordings licensed CC BY-NC-SA 4.0 (and CC BY 4.0, CC BY 3.0, CC BY-NC 3.0, public "
    "domain) listed in ../shared/data/SOURCES.md: the weights carry CC BY-NC-SA 4.0 (non-commercial, share alike; "
    "LICENSE-weights.md beside them); the code is MIT"
)
SIGNATURE = "htdemucs_small_here"
SOURCES = ("vocals", "accompaniment")
DEFAULT = False  # not part of a plain `make bench`: it trains three networks for 70 minutes
COMMAND = "make bench-network-separator"
SAMPLE_RATE = 44100
SEGMENT_S = 2.0
ARCHITECTURE = {"channels": 12, "depth": 4, "t_layers": 1}
BATCH_SIZE = 2
LEARNING_RATE = 1e-3
MINUTES = 30.0  # wall clock: the number of steps depends on the machine (summary.json records it)
CHECKPOINT_MINUTES = 5.0
LOG_EVERY = 100
SEED = 0
GAIN_RANGE = (0.25, 1.25)
REMIX_PROBABILITY = 0.5


@dataclass(frozen=True)
class Network:
    """A separator network trained here: its signature (file stem), where it is written, its HTDemucs keywords,
    seed, wall-clock budget and which training singers it learns from (``singer_half`` None: all of them; 0 or 1:
    every other one of the sorted training singers, from the first or the second)."""

    signature: str
    folder: Path
    architecture: dict
    seed: int
    minutes: float
    singer_half: int | None = None


NETWORKS = {
    # bench-quality's level network_small: held out of every refiner's training
    "small": Network(SIGNATURE, OUT_DIR, ARCHITECTURE, SEED, MINUTES),
    # a second, differently built network whose separations of the training songs refiners learn from; the songs of
    # the singers it never heard carry a network's errors on unheard voices, the others cleaner ones
    "half": Network(
        "htdemucs_half_here",
        ROOT / "runs" / "quality" / "network_half",
        {"channels": 16, "depth": 4, "t_layers": 1},
        seed=1,
        minutes=20.0,
        singer_half=0,
    ),
    # a third network, held out of everything (no refiner learns from it, no setting is chosen on it): a test of
    # whether what was tuned on the other two holds on a network's errors nobody looked at
    "other": Network(
        "htdemucs_other_here",
        ROOT / "runs" / "quality" / "network_other",
        {"channels": 20, "depth": 4, "t_layers": 1},
        seed=2,
        minutes=20.0,
        singer_half=1,
    ),
}


def log(message: str) -> None:
    """A line on stdout, on a line of its own under a progress bar."""
    tqdm.write(f"[network_separator {time.strftime('%H:%M:%S')}] {message}", file=sys.stdout)


def build_model(segment_s: float = SEGMENT_S, **architecture):
    """A fresh stereo 44.1 kHz :class:`HTDemucs` separating :data:`SOURCES`; ``architecture`` overrides
    :data:`ARCHITECTURE` (any HTDemucs keyword). ``segment_s``: its training crop (s), also its inference segment."""
    from demucs.htdemucs import HTDemucs

    return HTDemucs(
        list(SOURCES),
        audio_channels=2,
        samplerate=SAMPLE_RATE,
        segment=segment_s,
        **(ARCHITECTURE | architecture),
    )


def n_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


class Crops:
    """The training songs in memory, drawn from as random training examples.

    Holds per track the vocals and the accompaniment (mixture minus vocals), float32 ``(2, n_samples)`` at 44.1
    kHz; tracks are drawn in proportion to their length.
    """

    def __init__(self, tracks: Sequence, progress: bool = False):
        self.vocals: list[np.ndarray] = []
        self.accompaniments: list[np.ndarray] = []
        for track in tqdm(tracks, desc="loading songs", unit="song", disable=not progress):
            mixture, vocals = track.mixture(), track.vocals()
            self.vocals.append(np.ascontiguousarray(vocals.T))
            self.accompaniments.append(np.ascontiguousarray((mixture - vocals).T))
        lengths = np.array([v.shape[1] for v in self.vocals], dtype=np.float64)
        self.probabilities = lengths / lengths.sum()

    @property
    def seconds(self) -> float:
        return sum(v.shape[1] for v in self.vocals) / SAMPLE_RATE

    def _crop(self, audio: list[np.ndarray], index: int, start: int, n_samples: int) -> np.ndarray:
        """``(2, n_samples)`` of track ``index`` from ``start``, zero-padded past its end."""
        piece = audio[index][:, start : start + n_samples]
        return np.pad(piece, ((0, 0), (0, n_samples - piece.shape[1])))

    def _position(self, rng: np.random.Generator, n_samples: int) -> tuple[int, int]:
        index = int(rng.choice(len(self.vocals), p=self.probabilities))
        return index, int(rng.integers(0, max(1, self.vocals[index].shape[1] - n_samples + 1)))

    def batch(self, rng: np.random.Generator, batch_size: int, n_samples: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mixture (batch, 2, n_samples), sources (batch, 2 sources, 2, n_samples))``, the sources in the order
        of :data:`SOURCES` and the mixture their sum (see the module docstring for the augmentation)."""
        examples = []
        for _ in range(batch_size):
            index, start = self._position(rng, n_samples)
            vocals = self._crop(self.vocals, index, start, n_samples)
            if rng.random() < REMIX_PROBABILITY:
                index, start = self._position(rng, n_samples)
            accompaniment = self._crop(self.accompaniments, index, start, n_samples)
            sources = np.stack([vocals, accompaniment]) * rng.uniform(*GAIN_RANGE, size=(2, 1, 1))
            examples.append(sources[:, ::-1] if rng.random() < 0.5 else sources)
        sources = torch.from_numpy(np.stack(examples).astype(np.float32))
        return sources.sum(dim=1), sources


def train(
    model: torch.nn.Module,
    crops: Crops,
    folder: Path,
    *,
    steps: int | None = None,
    minutes: float = MINUTES,
    batch_size: int = BATCH_SIZE,
    learning_rate: float = LEARNING_RATE,
    seed: int = SEED,
    checkpoint_minutes: float = CHECKPOINT_MINUTES,
    log_every: int = LOG_EVERY,
    validate: Callable[[torch.nn.Module], float] | None = None,
    progress: bool = True,
) -> dict:
    """Train ``model`` in place for ``steps`` steps, or while less than ``minutes`` of wall-clock time (summed over
    resumed runs) have passed, resuming from ``folder/state.pt``.

    The state (weights, optimiser, random generators, progress) is written there atomically every
    ``checkpoint_minutes`` and at the end; ``validate(model)`` (a median SI-SDR, dB) runs at each timed write.
    Returns the progress: ``step``, ``elapsed_s`` and ``history`` (``step``, ``minutes``, mean ``l1`` of the
    last ``log_every`` steps, and ``validation_si_sdr`` where validated).
    """
    from ddsp_demucs.core.utils import atomic_path

    state_path = folder / "state.pt"
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    status: dict = {"step": 0, "elapsed_s": 0.0, "history": []}
    losses: list[float] = []  # of this run's steps
    if state_path.is_file():
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        rng.bit_generator.state = state["numpy_rng"]
        torch.set_rng_state(state["torch_rng"])
        status = state["status"]
        log(f"resumed from {state_path} at step {status['step']} ({status['elapsed_s'] / 60:.1f} min)")

    def finished() -> bool:
        return status["step"] >= steps if steps is not None else status["elapsed_s"] >= minutes * 60

    def checkpoint(validated: bool) -> None:
        entry: dict = {"step": status["step"], "minutes": round(status["elapsed_s"] / 60, 2)}
        if losses:
            entry["l1"] = round(float(np.mean(losses[-log_every:])), 5)
        if validated and validate is not None:
            entry["validation_si_sdr"] = round(validate(model), 3)
            log(f"step {status['step']}: validation median SI-SDR {entry['validation_si_sdr']:.2f} dB")
        status["history"].append(entry)
        with atomic_path(state_path) as tmp:
            torch.save(
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "numpy_rng": rng.bit_generator.state,
                    "torch_rng": torch.get_rng_state(),
                    "status": status,
                },
                tmp,
            )

    n_samples = round(float(model.segment) * SAMPLE_RATE)
    model.train()
    start, base = time.monotonic(), status["elapsed_s"]
    last_checkpoint = start
    bar = tqdm(total=steps, initial=status["step"], desc="training", unit="step", mininterval=10, disable=not progress)
    while not finished():
        mixture, sources = crops.batch(rng, batch_size, n_samples)
        loss = (model(mixture) - sources).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        status["step"] += 1
        status["elapsed_s"] = base + time.monotonic() - start
        bar.update(1)
        bar.set_postfix(l1=f"{loss.item():.4f}", minutes=f"{status['elapsed_s'] / 60:.1f}", refresh=False)
        if status["step"] % log_every == 0:
            seconds_per_step = (time.monotonic() - start) / max(1, len(losses))
            log(
                f"step {status['step']}: L1 {np.mean(losses[-log_every:]):.4f} "
                f"({status['elapsed_s'] / 60:.1f} min, {seconds_per_step:.2f} s/step)"
            )
        if time.monotonic() - last_checkpoint >= checkpoint_minutes * 60 and not finished():
            checkpoint(validated=True)
            status["elapsed_s"] = base + time.monotonic() - start
            last_checkpoint = time.monotonic()
    bar.close()
    if not status["history"] or status["history"][-1]["step"] != status["step"]:
        checkpoint(validated=False)
    return status


def save_package(model: torch.nn.Module, folder: Path, training_args: dict, signature: str = SIGNATURE) -> Path:
    """Write ``model`` as ``folder/<signature>.th`` in Demucs' package format (float32), atomically; its path."""
    from demucs.states import get_state

    from ddsp_demucs.core.utils import atomic_path

    args, kwargs = model._init_args_kwargs  # recorded by demucs' @capture_init, as serialize_model reads it
    package = {
        "klass": type(model),
        "args": args,
        "kwargs": kwargs,
        "state": get_state(model, None, half=False),
        "training_args": training_args,
    }
    path = folder / f"{signature}.th"
    with atomic_path(path) as tmp:
        torch.save(package, tmp)
    return path


def vocal_si_sdrs(repo: Path, tracks: Sequence, signature: str = SIGNATURE) -> list[float]:
    """SI-SDR (dB, mono downmix) of the vocals that ``get_separator(signature, repo=repo)`` separates from each
    track's mixture, against its true vocals."""
    from ddsp_demucs.metrics import si_sdr
    from ddsp_demucs.separation.demucs import get_separator

    separator = get_separator(signature, repo=repo)
    scores = []
    for track in tracks:
        estimate = separator.extract_vocals(track.mixture(), SAMPLE_RATE)
        scores.append(float(si_sdr(estimate.mean(axis=1).astype(np.float64), track.vocals().mean(axis=1))))
    return scores


def trained_separator_available(folder: Path = OUT_DIR, signature: str = SIGNATURE) -> bool:
    """Whether ``folder`` holds a finished run: ``<signature>.th`` and a summary saying it finished."""
    summary = folder / "summary.json"
    if not (folder / f"{signature}.th").is_file() or not summary.is_file():
        return False
    return bool(json.loads(summary.read_text()).get("finished"))


def shipped_separator_available(signature: str) -> bool:
    """Whether :data:`SHIPPED` holds ``<signature>.safetensors`` and its card."""
    return (SHIPPED / f"{signature}.safetensors").is_file() and (SHIPPED / f"{signature}.json").is_file()


def separator_repo(network: Network) -> Path | None:
    """The folder ``get_separator(network.signature, repo=...)`` loads ``network`` from: :data:`SHIPPED` where it is
    shipped, else the network's folder where its training here has finished, else None."""
    if shipped_separator_available(network.signature):
        return SHIPPED
    return network.folder if trained_separator_available(network.folder, network.signature) else None


def install_network(network: Network) -> Path:
    """Ship ``network`` as trained here (finished): its weights into :data:`SHIPPED` in :data:`SHIPPED_DTYPE` and
    a card beside them (its training summary, the validation songs' SI-SDR as shipped, the licence); the card's
    path."""
    from ddsp_demucs.core.utils import write_json_atomic
    from ddsp_demucs.data import musdb_tracks
    from ddsp_demucs.separation.demucs import get_separator, save_safetensors_model

    summary = json.loads((network.folder / "summary.json").read_text())
    model = get_separator(network.signature, repo=network.folder).model
    SHIPPED.mkdir(parents=True, exist_ok=True)
    weights = save_safetensors_model(model, SHIPPED / f"{network.signature}.safetensors", SHIPPED_DTYPE)
    valid_tracks = musdb_tracks(CORPUS, subsets=("train",), split="valid")
    scores = vocal_si_sdrs(SHIPPED, valid_tracks, network.signature)
    card = SHIPPED / f"{network.signature}.json"
    write_json_atomic(
        card,
        {
            "what": f"a small HTDemucs separating {' and '.join(SOURCES)}, trained by `{COMMAND}` (bench/"
            "network_separator.py); bench-quality scores refiners on its separations of the test singers' songs",
            "weights": weights.name,
            "stored_as": str(SHIPPED_DTYPE).removeprefix("torch."),
            "loaded_as": "float32",
            "parameters": summary["parameters"],
            "steps": summary["steps"],
            "minutes": summary["minutes"],
            "recipe": summary["recipe"],
            "validation_as_trained": summary["validation"],
            "validation_as_shipped": {
                "median_si_sdr": float(np.median(scores)),
                "si_sdr": dict(zip((t.name for t in valid_tracks), scores)),
            },
            "command": f"{COMMAND}; python -m bench.network_separator --install",
            "licence": LICENCE,
        },
    )
    log(f"shipped {weights.relative_to(ROOT)}: validation median SI-SDR {np.median(scores):.2f} dB as shipped")
    return card


def compare_with_shipped(network: Network) -> None:
    """Log the validation median SI-SDR of ``network`` as trained here beside the shipped network's (its card)."""
    if not shipped_separator_available(network.signature):
        log(f"{network.signature} is not shipped: `python -m bench.network_separator --install` ships it")
        return
    trained = json.loads((network.folder / "summary.json").read_text())["validation"]["median_si_sdr"]
    shipped = json.loads((SHIPPED / f"{network.signature}.json").read_text())["validation_as_shipped"]
    log(
        f"{network.signature}: validation median SI-SDR {trained:.2f} dB trained here, {shipped['median_si_sdr']:.2f} "
        "dB shipped (bench-quality scores the shipped one)"
    )


def training_singers(tracks: Sequence, manifest: dict, half: int | None) -> list[str]:
    """The singers of ``tracks`` (as ``manifest["tracks"]`` names them), sorted; with ``half`` 0 or 1 every other
    one of them, from the first or the second."""
    singers = sorted({manifest["tracks"][t.name]["singer"] for t in tracks})
    return singers if half is None else singers[half::2]


def train_network(network: Network, minutes: float | None = None, steps: int | None = None) -> None:
    """Train (or resume) ``network`` on its training singers' songs of :data:`CORPUS` and score it on the
    validation songs; nothing when it has finished."""
    from ddsp_demucs.core.utils import write_json_atomic
    from ddsp_demucs.data import musdb_tracks

    out, signature = network.folder, network.signature
    if trained_separator_available(out, signature):
        log(f"{out / signature}.th is trained: {json.loads((out / 'summary.json').read_text())['validation']}")
        return
    if not (CORPUS / "manifest.json").is_file():
        print(f"network_separator: {CORPUS} not found; `make bench-quality` writes it first")
        sys.exit(1)
    manifest = json.loads((CORPUS / "manifest.json").read_text())
    train_tracks = musdb_tracks(CORPUS, subsets=("train",), split="train")
    singers = training_singers(train_tracks, manifest, network.singer_half)
    train_tracks = [t for t in train_tracks if manifest["tracks"][t.name]["singer"] in singers]
    valid_tracks = musdb_tracks(CORPUS, subsets=("train",), split="valid")
    torch.manual_seed(network.seed)
    model = build_model(**network.architecture)
    recipe = {
        "architecture": network.architecture,
        "segment_s": SEGMENT_S,
        "batch_size": BATCH_SIZE,
        "learning_rate": LEARNING_RATE,
        "loss": "L1 on the waveforms of both sources",
        "seed": network.seed,
        "corpus": str(CORPUS.relative_to(ROOT)),
        "train_tracks": len(train_tracks),
    } | ({"singers": singers} if network.singer_half is not None else {})
    log(f"loading {len(train_tracks)} training songs of {len(singers)} singers of {CORPUS.relative_to(ROOT)}")
    crops = Crops(train_tracks, progress=True)
    minutes = network.minutes if minutes is None else minutes
    budget = f"{steps} steps" if steps is not None else f"{minutes:g} minutes"
    log(
        f"training {signature} ({n_parameters(model) / 1e6:.2f} M parameters) on {crops.seconds / 60:.1f} min of "
        f"audio for {budget}; validation on {len(valid_tracks)} songs"
    )
    training = out / "training"

    def validate(trained: torch.nn.Module) -> float:
        save_package(trained, training, recipe, signature)
        return float(np.median(vocal_si_sdrs(training, valid_tracks, signature)))

    status = train(model, crops, training, steps=steps, minutes=minutes, seed=network.seed, validate=validate)
    package = save_package(model, out, recipe | {"steps": status["step"]}, signature)
    scores = vocal_si_sdrs(out, valid_tracks, signature)
    validation = {
        "median_si_sdr": float(np.median(scores)),
        "si_sdr": dict(zip((t.name for t in valid_tracks), scores)),
    }
    write_json_atomic(
        out / "summary.json",
        {
            "signature": signature,
            "package": str(package.relative_to(ROOT) if package.is_relative_to(ROOT) else package),
            "sources": list(SOURCES),
            "parameters": n_parameters(model),
            "steps": status["step"],
            "minutes": round(status["elapsed_s"] / 60, 2),
            "recipe": recipe,
            "validation": validation,
            "history": status["history"],
            "command": COMMAND,
            "finished": True,
        },
    )
    log(f"wrote {package}: validation median SI-SDR {validation['median_si_sdr']:.2f} dB")


def main(argv: list[str] | None = None) -> None:
    """Train (or resume) and score the networks; ``argv`` as on the command line (None: the defaults)."""
    parser = argparse.ArgumentParser(prog="python -m bench.network_separator", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--network", choices=sorted(NETWORKS), action="append", help="train only this one (default: all of them)"
    )
    parser.add_argument("--minutes", type=float, default=None, help="wall-clock minutes (default: the network's)")
    parser.add_argument("--steps", type=int, default=None, help="train this many steps instead of --minutes")
    parser.add_argument(
        "--install", action="store_true", help=f"ship the networks trained here into {SHIPPED.relative_to(ROOT)}"
    )
    args = parser.parse_args([] if argv is None else argv)
    for name in args.network or NETWORKS:
        train_network(NETWORKS[name], args.minutes, args.steps)
        if args.install:
            install_network(NETWORKS[name])
        else:
            compare_with_shipped(NETWORKS[name])


if __name__ == "__main__":
    main(sys.argv[1:])
