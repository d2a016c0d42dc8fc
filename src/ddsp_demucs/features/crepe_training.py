"""Fine-tuning CREPE on separated vocals against a teacher's labels (the ``crepe-separated`` tracker).

A training song holds several *versions* of one vocal at 16 kHz, mono (the true vocal and the same vocal as
separators left it, sample-aligned) and one set of labels from a teacher on the true vocal: the pitch in cents and
whether the frame is voiced, on CREPE's 10 ms grid (frame ``j`` centred on sample ``j * 160``). Each draw takes a
random frame of a random version of a random song; the target is CREPE's own: a Gaussian of
:data:`TARGET_STD_CENTS` around the teacher's pitch over the 360 pitch bins where the teacher hears a voice, all
zeros where it does not (so the activation also says whether a voice is there); the loss is binary cross-entropy,
as CREPE was trained. Batch-norm statistics stay those of the published network (:class:`CrepeNet` always
normalises with its running statistics).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ddsp_demucs.core.utils import atomic_path
from ddsp_demucs.features.crepe import FRAME_SIZE, N_BINS, CrepeNet, bin_to_cents, load_crepe, normalise_frames

TARGET_STD_CENTS = 25.0  # CREPE's target width
LABEL_HOP = 160  # samples at 16 kHz between label frames (10 ms)
SILENT_STD = 1e-7  # frames below this standard deviation carry no pitch (salience gives them zero activation)


@dataclass
class TrackerSong:
    """One vocal for training: ``versions`` ``(n_versions, n_samples)`` float32 at 16 kHz, sample-aligned;
    ``cents`` ``(n_frames,)`` the teacher's pitch (cents re 10 Hz) and ``voiced`` ``(n_frames,)`` bool, frame ``j``
    centred on sample ``j * LABEL_HOP``."""

    versions: np.ndarray
    cents: np.ndarray
    voiced: np.ndarray


@dataclass(frozen=True)
class TrackerTrainingConfig:
    steps: int = 4000
    batch_size: int = 64
    learning_rate: float = 1e-4
    seed: int = 0
    checkpoint_every: int = 250  # steps between resumable states


def target_activations(cents: torch.Tensor, voiced: torch.Tensor) -> torch.Tensor:
    """CREPE's training target: ``(batch,)`` cents and voicing -> ``(batch, 360)`` in [0, 1], a Gaussian of
    :data:`TARGET_STD_CENTS` around ``cents`` on voiced frames, zeros on the others."""
    bins = torch.as_tensor(bin_to_cents(np.arange(N_BINS)), dtype=torch.float32)
    gauss = torch.exp(-0.5 * ((bins[None, :] - cents[:, None].float()) / TARGET_STD_CENTS) ** 2)
    return gauss * voiced[:, None].float()


def frames_at(audio: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """The 1024-sample CREPE frames of 16 kHz ``audio (n_samples,)`` centred on samples ``frames * LABEL_HOP``
    (zero beyond the edges, as :func:`~ddsp_demucs.features.crepe.salience` pads) -> ``(len(frames), 1024)``.
    Reads only those samples (the training loop cuts one frame at a time from whole songs)."""
    index = (np.asarray(frames) * LABEL_HOP - FRAME_SIZE // 2)[:, None] + np.arange(FRAME_SIZE)[None, :]
    inside = (index >= 0) & (index < audio.shape[0])
    return np.where(inside, audio[np.clip(index, 0, audio.shape[0] - 1)], 0.0).astype(audio.dtype)


def draw_batch(songs: list[TrackerSong], rng: np.random.Generator, batch_size: int) -> tuple[torch.Tensor, ...]:
    """A batch of random frames of random versions of random songs, digitally silent frames skipped:
    ``(frames (batch, 1024) normalised, cents (batch,), voiced (batch,))``."""
    frames, cents, voiced = [], [], []
    while len(frames) < batch_size:
        song = songs[rng.integers(len(songs))]
        version = rng.integers(song.versions.shape[0])
        j = int(rng.integers(song.cents.shape[0]))
        frame = frames_at(song.versions[version], np.array([j]))[0]
        if frame.std() < SILENT_STD:
            continue
        frames.append(frame)
        cents.append(song.cents[j])
        voiced.append(song.voiced[j])
    x = normalise_frames(torch.from_numpy(np.stack(frames).astype(np.float32)))
    return x, torch.tensor(np.array(cents), dtype=torch.float32), torch.tensor(np.array(voiced), dtype=torch.bool)


def train_tracker(
    songs: list[TrackerSong], config: TrackerTrainingConfig, state_path: Path, *, progress: bool = True
) -> CrepeNet:
    """Fine-tune CREPE-tiny's published weights on ``songs`` for ``config.steps`` steps (Adam); resumes from
    ``state_path`` (written atomically every ``config.checkpoint_every`` steps and at the end; a state of fewer
    steps continues to ``config.steps``, one of more is an error). Returns the network in eval mode."""
    from tqdm.auto import tqdm

    if not songs:
        raise ValueError("train_tracker needs at least one song")
    net = CrepeNet(4)
    net.load_state_dict(load_crepe("tiny").state_dict())
    optimiser = torch.optim.Adam(net.parameters(), lr=config.learning_rate)
    rng = np.random.default_rng(config.seed)
    step = 0
    if state_path.is_file():
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        net.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        step = int(state["step"])
        if step > config.steps:
            raise ValueError(f"{state_path} is at step {step}, past the {config.steps} asked for")
        rng.bit_generator.state = state["rng"]

    def save() -> None:
        with atomic_path(state_path) as tmp:
            torch.save(
                {
                    "model": net.state_dict(),
                    "optimiser": optimiser.state_dict(),
                    "step": step,
                    "rng": rng.bit_generator.state,
                },
                tmp,
            )

    net.train()
    bar = tqdm(total=config.steps, initial=step, desc="tracker", unit="step", disable=not progress)
    while step < config.steps:
        x, cents, voiced = draw_batch(songs, rng, config.batch_size)
        act = net(x).clamp(1e-7, 1 - 1e-7)
        loss = F.binary_cross_entropy(act, target_activations(cents, voiced))
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        step += 1
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.4f}")
        if step % config.checkpoint_every == 0 or step == config.steps:
            save()
    bar.close()
    return net.eval()


__all__ = [
    "TARGET_STD_CENTS",
    "TrackerSong",
    "TrackerTrainingConfig",
    "draw_batch",
    "frames_at",
    "target_activations",
    "train_tracker",
]
