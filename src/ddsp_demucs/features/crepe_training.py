"""Fine-tuning CREPE on separated vocals against a teacher's labels (the ``crepe-separated`` tracker).

A training song holds several *versions* of one vocal at 16 kHz, mono (the true vocal and the same vocal as
separators left it, sample-aligned) and one set of labels from a teacher on the true vocal: the pitch in cents and
whether the frame is voiced, on CREPE's 10 ms grid (frame ``j`` centred on sample ``j * 160``). Each draw takes a
random frame of a random version of a random song; the target is CREPE's own: a Gaussian of
:data:`TARGET_STD_CENTS` around the teacher's pitch over the 360 pitch bins where the teacher hears a voice, all
zeros where it does not (so the activation also says whether a voice is there); the loss is binary cross-entropy,
as CREPE was trained. Optionally (``mix_share``) a share of the draws is instead a song's true vocal with another
song's accompaniment added at a random vocal-to-accompaniment ratio: mixtures whose labels are exact; and
(``breath_share``) a share of the draws has noise shaped like the song's true vocal (its spectral envelope without
the harmonics, ``TrackerSong.breath``) added at a random power: a breathier voice, same labels. With
``reads_mixture`` the network has a second input channel, the song's mixture at the same frame (``TrackerSong.
mixture``; a share ``mixture_start_share`` of CREPE-tiny's first-layer weights moves to that channel at the start:
0 starts from CREPE-tiny on the vocal alone, 0.5 from CREPE-tiny on the mean of the two layers' inputs), and a share
``solo_share`` of the draws gives it the vocal itself there instead (a vocal on its own, no song). A share
``pitch_shift_share`` of the draws is pitch-shifted by up to ``pitch_shift_semitones`` either way (every signal
of the draw resampled alike, the label moved with it, :func:`shifted_frame`), so that the training singers' range
does not teach the network which octave to prefer. A share
``timbre_share`` of the draws gives the voice another timbre: its low harmonics cut by a shelf (:func:`low_cut`,
up to ``timbre_max_cut_db`` below a corner anywhere in :data:`TIMBRE_CORNER_HZ`), the separator's error left as it
was (the draw is the version plus the change the cut makes to the true vocal): voices whose fundamental lies far
below their upper harmonics, separated as the training songs were. Batch-norm
statistics stay those of the published network (:class:`CrepeNet` always normalises with its running statistics).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ddsp_demucs.core.utils import atomic_path
from ddsp_demucs.features.crepe import FRAME_SIZE, N_BINS, CrepeNet, bin_to_cents, load_crepe, normalise_frames

TARGET_STD_CENTS = 25.0  # CREPE's target width
LABEL_HOP = 160  # samples at 16 kHz between label frames (10 ms)
MIX_RATIO_DB = (-5.0, 20.0)  # default range of a mixed draw's vocal-to-accompaniment ratio (uniform, dB)
BREATH_MAX_POWER = 1.0  # default largest power of a breathy draw's noise, as a share of the vocal's (uniform)
SILENT_STD = 1e-7  # frames below this standard deviation carry no pitch (salience gives them zero activation)
TIMBRE_CORNER_HZ = (150.0, 1000.0)  # low_cut's corner in timbre draws: log-uniform in this range
TIMBRE_WIDTH_OCTAVES = 1.0  # low_cut: the cut falls from its depth to nothing over this many octaves up to the corner
SHIFT_GRID = 64  # shifted_frame: a pitch shift by k / SHIFT_GRID (integer k), 27 cents apart near no shift


@dataclass
class TrackerSong:
    """One vocal for training: ``versions`` ``(n_versions, n_samples)`` float32 at 16 kHz, sample-aligned, the
    true vocal first; ``cents`` ``(n_frames,)`` the teacher's pitch (cents re 10 Hz) and ``voiced`` ``(n_frames,)``
    bool, frame ``j`` centred on sample ``j * LABEL_HOP``; ``accompaniment`` ``(n_samples,)`` (the song without its
    vocal, for ``mix_share``) or None; ``breath`` ``(n_samples,)`` (noise with the true vocal's spectral envelope
    and power, for ``breath_share``: :func:`ddsp_demucs.data.breath_noise.vocal_shaped_noise` scaled) or None;
    ``mixture`` ``(n_samples,)`` (the song the versions were separated from, for ``reads_mixture``) or None."""

    versions: np.ndarray
    cents: np.ndarray
    voiced: np.ndarray
    accompaniment: np.ndarray | None = None
    breath: np.ndarray | None = None
    mixture: np.ndarray | None = None
    vocal_rms: float = field(init=False)
    accompaniment_rms: float = field(init=False)

    def __post_init__(self):
        self.vocal_rms = rms(self.versions[0])
        self.accompaniment_rms = 0.0 if self.accompaniment is None else rms(self.accompaniment)


def rms(audio: np.ndarray) -> float:
    """Root mean square of ``audio`` (any shape), float64."""
    return float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))


def accompaniment_gain(vocal_rms: float, accompaniment_rms: float, ratio_db: float) -> float:
    """The gain on an accompaniment of ``accompaniment_rms`` that puts a vocal of ``vocal_rms`` ``ratio_db`` dB
    above it: ``20 log10(vocal_rms / (gain * accompaniment_rms)) = ratio_db`` (0 for a silent accompaniment)."""
    if accompaniment_rms <= 0.0:
        return 0.0
    return vocal_rms / accompaniment_rms * 10.0 ** (-ratio_db / 20.0)


@dataclass(frozen=True)
class TrackerTrainingConfig:
    steps: int = 4000
    batch_size: int = 64
    learning_rate: float = 1e-4
    seed: int = 0
    checkpoint_every: int = 250  # steps between resumable states
    mix_share: float = 0.0  # share of draws that are a true vocal plus another song's accompaniment
    mix_ratio_db: tuple[float, float] = MIX_RATIO_DB  # range of their vocal-to-accompaniment ratio
    breath_share: float = 0.0  # share of draws with the song's breath noise added
    breath_max_power: float = BREATH_MAX_POWER  # its power: uniform up to this share of the vocal's
    reads_mixture: bool = False  # a second input channel: the song's mixture at the same frame
    solo_share: float = 0.2  # with reads_mixture: share of draws whose second channel is the vocal itself
    mixture_start_share: float = 0.5  # with reads_mixture: share of the first layer's weights on the mixture at first
    pitch_shift_share: float = 0.0  # share of draws pitch-shifted (shifted_frame), label moved with it
    pitch_shift_semitones: float = 12.0  # their shift: uniform in semitones up to this either way
    timbre_share: float = 0.0  # share of draws whose voice has its low harmonics cut (low_cut)
    timbre_max_cut_db: float = 30.0  # their cut: uniform in dB up to this

    def __post_init__(self):
        if not 0.0 <= self.pitch_shift_semitones <= 12.0:
            raise ValueError(f"pitch_shift_semitones must be in [0, 12], got {self.pitch_shift_semitones}")
        if self.timbre_max_cut_db < 0.0:
            raise ValueError(f"timbre_max_cut_db must be >= 0, got {self.timbre_max_cut_db}")
        shares = ("mix_share", "breath_share", "solo_share", "mixture_start_share", "pitch_shift_share", "timbre_share")
        for name in shares:
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.breath_max_power < 0.0:
            raise ValueError(f"breath_max_power must be >= 0, got {self.breath_max_power}")
        if self.mix_ratio_db[0] > self.mix_ratio_db[1]:
            raise ValueError(f"mix_ratio_db must be (low, high), got {self.mix_ratio_db}")
        if self.reads_mixture and (self.mix_share > 0 or self.breath_share > 0):
            raise ValueError("reads_mixture does not combine with mix_share or breath_share (which mixture?)")


def target_activations(cents: torch.Tensor, voiced: torch.Tensor) -> torch.Tensor:
    """CREPE's training target: ``(batch,)`` cents and voicing -> ``(batch, 360)`` in [0, 1], a Gaussian of
    :data:`TARGET_STD_CENTS` around ``cents`` on voiced frames, zeros on the others."""
    bins = torch.as_tensor(bin_to_cents(np.arange(N_BINS)), dtype=torch.float32)
    gauss = torch.exp(-0.5 * ((bins[None, :] - cents[:, None].float()) / TARGET_STD_CENTS) ** 2)
    return gauss * voiced[:, None].float()


def frames_at(audio: np.ndarray, frames: np.ndarray, length: int = FRAME_SIZE) -> np.ndarray:
    """The ``length``-sample frames (CREPE's 1024 by default) of 16 kHz ``audio (n_samples,)`` centred on samples
    ``frames * LABEL_HOP`` (zero beyond the edges, as :func:`~ddsp_demucs.features.crepe.salience` pads) ->
    ``(len(frames), length)``. Reads only those samples (the training loop cuts one frame at a time from whole
    songs)."""
    index = (np.asarray(frames) * LABEL_HOP - length // 2)[:, None] + np.arange(length)[None, :]
    inside = (index >= 0) & (index < audio.shape[0])
    return np.where(inside, audio[np.clip(index, 0, audio.shape[0] - 1)], 0.0).astype(audio.dtype)


def low_cut(frames: np.ndarray, corner_hz: float, cut_db: float, sample_rate: int = 16000) -> np.ndarray:
    """``frames (..., n)`` with a low shelf applied to each along its last axis (circularly, by FFT): the gain in dB is
    ``-cut_db`` below ``corner_hz / 2**TIMBRE_WIDTH_OCTAVES``, 0 above ``corner_hz``, linear in log-frequency
    between (0 Hz included in the cut). Same dtype."""
    n = frames.shape[-1]
    freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
    octaves_below = np.log2(corner_hz / np.maximum(freqs, 1e-9))
    gain_db = -cut_db * np.clip(octaves_below / TIMBRE_WIDTH_OCTAVES, 0.0, 1.0)
    spectrum = np.fft.rfft(frames.astype(np.float64), axis=-1) * 10.0 ** (gain_db / 20.0)
    return np.fft.irfft(spectrum, n=n, axis=-1).astype(frames.dtype)


def shifted_frame(audio: np.ndarray, frame: int, k: int) -> np.ndarray:
    """The CREPE frame of ``audio`` at label frame ``frame`` (as :func:`frames_at`) with every frequency times
    ``k / SHIFT_GRID``: the ``2 * 1024 * k / SHIFT_GRID`` samples around it resampled (polyphase, band-limited) to
    2048, the middle 1024 kept (away from the resampler's edges) -> ``(1024,)``. ``k = SHIFT_GRID``: the frame
    itself. The pitch moves by ``1200 log2(k / SHIFT_GRID)`` cents."""
    from scipy.signal import resample_poly

    if k == SHIFT_GRID:
        return frames_at(audio, np.array([frame]))[0]
    segment = frames_at(audio, np.array([frame]), 2 * FRAME_SIZE * k // SHIFT_GRID)[0]
    resampled = resample_poly(segment.astype(np.float64), SHIFT_GRID, k)
    return resampled[FRAME_SIZE // 2 : FRAME_SIZE // 2 + FRAME_SIZE].astype(audio.dtype)


def draw_batch(
    songs: list[TrackerSong],
    rng: np.random.Generator,
    batch_size: int,
    *,
    mix_share: float = 0.0,
    mix_ratio_db: tuple[float, float] = MIX_RATIO_DB,
    breath_share: float = 0.0,
    breath_max_power: float = BREATH_MAX_POWER,
    reads_mixture: bool = False,
    solo_share: float = 0.0,
    pitch_shift_share: float = 0.0,
    pitch_shift_semitones: float = 12.0,
    timbre_share: float = 0.0,
    timbre_max_cut_db: float = 30.0,
) -> tuple[torch.Tensor, ...]:
    """A batch of random frames of random versions of random songs, digitally silent frames skipped:
    ``(frames (batch, 1024) normalised, cents (batch,), voiced (batch,))``; with ``reads_mixture``, ``frames
    (batch, 2, 1024)``: the version's frame and the song's ``mixture`` at the same frame (in ``solo_share`` of the
    draws the version's frame again), each normalised. With ``mix_share`` > 0, that share of
    the draws is a frame of a song's true vocal plus a random frame of a random song's accompaniment, scaled so
    that the two songs' levels stand ``U(mix_ratio_db)`` dB apart (:func:`accompaniment_gain`). With
    ``breath_share`` > 0, that share of the draws (mixed or not) has the song's ``breath`` at the same frame added
    at a power ``U(0, breath_max_power)`` times the vocal's. With ``pitch_shift_share`` > 0, that share of the
    draws has every signal shifted by ``U(-1, 1) * pitch_shift_semitones`` semitones (:func:`shifted_frame`, to the
    nearest step of its grid) and its label moved with it. With ``timbre_share`` > 0, that share of the draws adds
    to the version the change :func:`low_cut` (corner log-uniform in :data:`TIMBRE_CORNER_HZ`, cut ``U(0,
    timbre_max_cut_db)`` dB) makes to the song's true vocal at the same frame: the voice's timbre changes, the
    separator's error stays; same labels."""
    with_accompaniment = [s for s in songs if s.accompaniment is not None]
    if mix_share > 0 and not with_accompaniment:
        raise ValueError("mix_share > 0 needs songs with an accompaniment")
    if breath_share > 0 and any(s.breath is None for s in songs):
        raise ValueError("breath_share > 0 needs every song's breath noise")
    if reads_mixture and any(s.mixture is None for s in songs):
        raise ValueError("reads_mixture needs every song's mixture")
    frames, cents, voiced = [], [], []
    while len(frames) < batch_size:
        song = songs[rng.integers(len(songs))]
        mixed = mix_share > 0 and rng.random() < mix_share
        version = 0 if mixed else rng.integers(song.versions.shape[0])
        j = int(rng.integers(song.cents.shape[0]))
        shift = SHIFT_GRID
        if pitch_shift_share > 0 and rng.random() < pitch_shift_share:
            shift = round(SHIFT_GRID * 2.0 ** (rng.uniform(-1.0, 1.0) * pitch_shift_semitones / 12.0))
        frame = shifted_frame(song.versions[version], j, shift)
        timbre = np.zeros_like(frame)  # what another timbre changes in the voice (and so in the song)
        if timbre_share > 0 and rng.random() < timbre_share:
            corner = float(np.exp(rng.uniform(*np.log(TIMBRE_CORNER_HZ))))
            voice = frame if version == 0 else shifted_frame(song.versions[0], j, shift)
            timbre = low_cut(voice, corner, float(rng.uniform(0.0, timbre_max_cut_db))) - voice
            frame = frame + timbre
        if mixed:
            other = with_accompaniment[rng.integers(len(with_accompaniment))]
            k = int(rng.integers(1 + other.accompaniment.shape[0] // LABEL_HOP))
            gain = accompaniment_gain(song.vocal_rms, other.accompaniment_rms, float(rng.uniform(*mix_ratio_db)))
            frame = frame + np.float32(gain) * shifted_frame(other.accompaniment, k, shift)
        if breath_share > 0 and rng.random() < breath_share:
            power = float(rng.uniform(0.0, breath_max_power))
            frame = frame + np.float32(np.sqrt(power)) * shifted_frame(song.breath, j, shift)
        if frame.std() < SILENT_STD:
            continue
        if reads_mixture:
            solo = rng.random() < solo_share
            frame = np.stack([frame, frame if solo else shifted_frame(song.mixture, j, shift) + timbre])
        frames.append(frame)
        cents.append(song.cents[j] + 1200.0 * np.log2(shift / SHIFT_GRID))
        voiced.append(song.voiced[j])
    x = normalise_frames(torch.from_numpy(np.stack(frames).astype(np.float32)))
    return x, torch.tensor(np.array(cents), dtype=torch.float32), torch.tensor(np.array(voiced), dtype=torch.bool)


def widened(state: dict[str, torch.Tensor], in_channels: int, share: float = 0.0) -> dict[str, torch.Tensor]:
    """A one-channel CREPE state dict with ``in_channels`` input channels: each new channel's first-layer weights
    are ``share`` times the old ones and the first channel keeps the rest. ``share`` 0: the network computes what it
    did from the first channel alone; with two channels and 0.5: what it did on the mean of the two channels."""
    weight = state["conv1.weight"]  # (out, 1, kernel, 1)
    extra = [share * weight] * (in_channels - 1)
    return state | {"conv1.weight": torch.cat([(1.0 - share * (in_channels - 1)) * weight, *extra], dim=1)}


def train_tracker(
    songs: list[TrackerSong], config: TrackerTrainingConfig, state_path: Path, *, progress: bool = True
) -> CrepeNet:
    """Fine-tune CREPE-tiny's published weights on ``songs`` for ``config.steps`` steps (Adam); resumes from
    ``state_path`` (written atomically every ``config.checkpoint_every`` steps and at the end; a state of fewer
    steps continues to ``config.steps``, one of more is an error). Returns the network in eval mode."""
    from tqdm.auto import tqdm

    if not songs:
        raise ValueError("train_tracker needs at least one song")
    net = CrepeNet(4, 2 if config.reads_mixture else 1)
    net.load_state_dict(widened(load_crepe("tiny").state_dict(), net.conv1.in_channels, config.mixture_start_share))
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
        x, cents, voiced = draw_batch(
            songs,
            rng,
            config.batch_size,
            mix_share=config.mix_share,
            mix_ratio_db=config.mix_ratio_db,
            breath_share=config.breath_share,
            breath_max_power=config.breath_max_power,
            reads_mixture=config.reads_mixture,
            solo_share=config.solo_share,
            pitch_shift_share=config.pitch_shift_share,
            pitch_shift_semitones=config.pitch_shift_semitones,
            timbre_share=config.timbre_share,
            timbre_max_cut_db=config.timbre_max_cut_db,
        )
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
    "accompaniment_gain",
    "draw_batch",
    "frames_at",
    "low_cut",
    "shifted_frame",
    "target_activations",
    "train_tracker",
    "widened",
]
