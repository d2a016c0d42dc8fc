"""The typed configuration schema. YAML files in ``configs/`` fill these dataclasses via ``load_config``.

Sections: ``data`` (sources, rates, windows), ``corpus`` (the synthetic corpus of the demo), ``features`` (F0 method
and voicing), ``gate`` (segment thresholds), ``model`` (ResidualDDSPDecoder arguments), ``loss`` (term weights),
``training`` (optimiser and loop). Every field has a default, so a config file holds only what differs. Dict-style
access (``config["training"]["learning_rate"]``) works as in the original code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal, Optional

# the trackers of ddsp_demucs.features.pitch
F0_METHODS = ("crepe-tiny", "crepe-full", "crepe-separated", "crepe-mixture", "pyin")


@dataclass(frozen=True)
class Range:
    """The values a numeric field may take: between ``low`` and ``high`` (None: unbounded), each bound included
    unless ``open_low`` / ``open_high``. A list is checked element by element; None (an unset optional) passes."""

    low: Optional[float] = None
    high: Optional[float] = None
    open_low: bool = False
    open_high: bool = False

    def problem(self, value) -> Optional[str]:
        """None when ``value`` is allowed, else what is wrong with it (``"must be > 0, got -1"``)."""
        if isinstance(value, (list, tuple)):
            return next((p for p in map(self.problem, value) if p is not None), None)
        if value is None:
            return None
        too_low = self.low is not None and (value <= self.low if self.open_low else value < self.low)
        too_high = self.high is not None and (value >= self.high if self.open_high else value > self.high)
        return f"must be {self.describe()}, got {value!r}" if too_low or too_high else None

    def describe(self) -> str:
        low = None if self.low is None else f"{'>' if self.open_low else '>='} {self.low:g}"
        high = None if self.high is None else f"{'<' if self.open_high else '<='} {self.high:g}"
        return " and ".join(part for part in (low, high) if part is not None)


POSITIVE = Range(0, open_low=True)
NON_NEGATIVE = Range(0)
AT_LEAST_ONE = Range(1)
FRACTION = Range(0, 1)


class _Section:
    def __getitem__(self, key: str):
        if key not in self.__dataclass_fields__ and not isinstance(getattr(type(self), key, None), property):  # type: ignore[attr-defined]
            raise KeyError(key)
        return getattr(self, key)


@dataclass
class DataConfig(_Section):
    LIMITS: ClassVar[dict[str, Range]] = {
        "sample_rate": AT_LEAST_ONE,
        "train_sr": AT_LEAST_ONE,
        "frame_rate": AT_LEAST_ONE,
        "win_s": POSITIVE,
        "hop_s": POSITIVE,
        "val_fraction": Range(0, 1, open_high=True),
    }

    sample_rate: int = 44100  # rate of mixtures and stems on disk (Hz)
    train_sr: int = 22050  # rate the DDSP model runs at (Hz), mono
    frame_rate: int = 250  # control frames per second
    win_s: float = 4.0  # training window length (s)
    hop_s: float = 1.0  # hop between windows (s)
    separator: str = "auto"  # "auto", a Demucs model name, or "fallback"
    demucs_repo: Optional[str] = None  # local folder of Demucs weights for offline use
    val_fraction: float = 0.15  # fraction of non-test tracks held out for validation


@dataclass
class FeaturesConfig(_Section):
    LIMITS: ClassVar[dict[str, Range]] = {"voicing_threshold": FRACTION, "crepe_hop": AT_LEAST_ONE}

    f0_method: Optional[str] = None  # one of F0_METHODS; None = the default tracker ("crepe-tiny")
    voicing_threshold: float = 0.5  # frames with F0 confidence >= this are voiced, the others get f0 0
    crepe_hop: int = 160  # samples at 16 kHz between CREPE network frames (160: 10 ms; 320 halves the F0 cost)
    harmonic_check: bool = False  # move F0 read an octave, fifth or fourth too high (features.harmonic_check)


@dataclass
class GateConfig(_Section):
    LIMITS: ClassVar[dict[str, Range]] = {"min_voiced_fraction": FRACTION, "min_mean_confidence": FRACTION}

    min_voiced_fraction: float = 0.4  # fraction of voiced frames in a window
    min_mean_confidence: float = 0.5  # mean F0 confidence over the voiced frames
    min_loudness_db: float = -45.0  # mean A-weighted loudness of the window (dB of the mean frame power)


@dataclass
class ModelConfig(_Section):
    LIMITS: ClassVar[dict[str, Range]] = {
        **dict.fromkeys(
            (
                "n_harmonics",
                "n_noise_bands",
                "hidden_size",
                "gru_units",
                "n_fc_layers",
                "n_mels",
                "encoder_units",
                "mask_hop",
                "n_mask_bands",
            ),
            AT_LEAST_ONE,
        ),
        "reverb_length": Range(2),  # dsp.Reverb's own minimum
        "mask_n_fft": Range(2),
        "voicing_threshold": FRACTION,
        "abstain_below": FRACTION,
        "loudness_std_db": POSITIVE,
        "mask_min": POSITIVE,
        "mask_max": POSITIVE,
    }

    composition: Literal["synth", "gate", "mask", "harmonic", "restore"] = "mask"
    n_harmonics: int = 64
    n_noise_bands: int = 65
    hidden_size: int = 256  # width of the fully connected stacks
    gru_units: int = 256
    n_fc_layers: int = 2
    use_audio_encoder: bool = True  # encode the separated vocal's log-mel frames
    use_accompaniment_encoder: bool = False  # also encode mixture - separated vocal (the accompaniment estimate)
    ambiguity_gate: Literal["off", "inference", "always"] = "off"  # mask/harmonic: act where the separator was unsure
    gate_shape: Literal["symmetric", "suppress_bleed"] = "symmetric"  # how that gate weighs the mask
    unvoiced_cap: Literal["off", "inference", "always"] = "off"  # mask: never raise frames the tracker calls unvoiced
    restore_reads_quality: bool = False  # restore: the share's head also reads each frame's separation ambiguity
    learned_confidence: bool = False  # mask: a head scales the mask's change per window (0.98 at init; see the model)
    abstain_below: float = 0.0  # with learned_confidence: refine leaves windows of lower confidence as they are
    n_mels: int = 64
    encoder_units: int = 128
    reverb: bool = True
    reverb_length: int = 8192  # learned impulse response length (samples at train_sr)
    mask_n_fft: int = 1024  # STFT of the model frame grid, audio encoder and mask
    mask_hop: int = 256  # model frame hop (samples at train_sr): the GRU runs at train_sr / hop
    voicing_threshold: float = 0.5  # confidence at which harmonics are half faded
    loudness_mean_db: float = -40.0  # loudness normalisation for the network input
    loudness_std_db: float = 20.0
    mask_min: float = 0.001  # mask range (soft-clamped in the log domain)
    mask_max: float = 4.0
    n_mask_bands: int = 16  # bands of the harmonic composition's gain, comb depth and width


@dataclass
class LossConfig(_Section):
    LIMITS: ClassVar[dict[str, Range]] = {
        "fft_sizes": Range(2),
        "overlap": Range(0, 1, open_high=True),
        **dict.fromkeys(("mag_weight", "logmag_weight", "si_sdr_weight", "mel_weight", "no_harm_weight"), NON_NEGATIVE),
        "n_mels": AT_LEAST_ONE,
    }

    fft_sizes: list[int] = field(default_factory=lambda: [2048, 1024, 512, 256, 128, 64])
    overlap: float = 0.75
    mag_weight: float = 1.0
    logmag_weight: float = 1.0
    si_sdr_weight: float = 0.0
    mel_weight: float = 0.0
    no_harm_weight: float = 0.0  # penalty on examples the model makes worse than the separated input
    n_mels: int = 80  # mel loss bands (mel_weight > 0)


@dataclass
class TrainingConfig(_Section):
    LIMITS: ClassVar[dict[str, Range]] = {
        **dict.fromkeys(
            ("batch_size", "max_steps", "epochs", "val_every_steps", "devices", "threads", "log_every_steps"),
            AT_LEAST_ONE,
        ),
        "learning_rate": POSITIVE,
        **dict.fromkeys(
            (
                "weight_decay",
                "warmup_steps",
                "grad_clip",
                "num_workers",
                "limit_val_batches",
                "early_stopping_patience",
                "max_nonfinite_steps",
                "n_audio_examples",
                "checkpoint_every_steps",
            ),
            NON_NEGATIVE,
        ),
        "min_lr_ratio": FRACTION,
        "input_blend_fraction": FRACTION,
        "breath_noise_fraction": FRACTION,
        "f0_error_fraction": FRACTION,
        "breath_noise_max_share": NON_NEGATIVE,
    }

    batch_size: int = 8
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 200
    max_steps: int = 20000
    epochs: int = 1000  # upper bound; max_steps usually ends training first
    grad_clip: float = 3.0
    precision: Literal["32", "bf16-mixed", "16-mixed"] = "32"
    seed: int = 0
    num_workers: int = 0
    val_every_steps: int = 500
    limit_val_batches: int = 50
    early_stopping_patience: int = 10  # validations without improvement
    max_nonfinite_steps: int = 20  # stop after this many skipped non-finite steps
    devices: int = 1
    accelerator: str = "auto"
    strategy: str = "auto"
    threads: Optional[int] = None
    min_lr_ratio: float = 0.01  # cosine decay ends at learning_rate * min_lr_ratio at max_steps
    log_every_steps: int = 50
    n_audio_examples: int = 2  # audio examples + spectrograms logged to TensorBoard per validation
    checkpoint_every_steps: int = 0  # also save last.ckpt every N steps (0: at validation only)
    input_blend_fraction: float = 0.0  # training windows given a cleaner input (ddsp_demucs.data.input_blend)
    breath_noise_fraction: float = 0.0  # training windows given a breathier voice (ddsp_demucs.data.breath_noise)
    breath_noise_max_share: float = 0.1  # the added noise's power, up to this share of the true vocal's
    f0_error_fraction: float = 0.0  # training windows given a tracker's F0 error (ddsp_demucs.data.f0_errors)
    init_checkpoint: Optional[str] = None  # start from this checkpoint's weights (parameters it lacks keep their init)
    trainable: list[str] = field(default_factory=list)  # train only parameters named with these prefixes (all: [])

    # The original code read the model's rates from this section (``config["training"]["sample_rate"]``); they
    # are set in ``data`` and readable here, read-only, once the section belongs to a :class:`Config`.
    @property
    def sample_rate(self) -> int:
        """``data.train_sr``: the rate the model trains at (Hz)."""
        return self._data().train_sr

    @property
    def frame_rate(self) -> int:
        """``data.frame_rate``: the control frame rate (Hz)."""
        return self._data().frame_rate

    def _data(self) -> "DataConfig":
        data = getattr(self, "_data_section", None)
        if data is None:
            raise AttributeError("training.sample_rate / frame_rate are read from a Config's data section")
        return data


@dataclass
class CorpusConfig(_Section):
    """The synthetic corpus the demo builds (``ddsp_demucs.corpus.synthetic.write_corpus``)."""

    LIMITS: ClassVar[dict[str, Range]] = {
        "n_train": NON_NEGATIVE,
        "n_valid": NON_NEGATIVE,
        "n_test": NON_NEGATIVE,
        "duration_s": POSITIVE,
    }

    n_train: int = 16  # training songs, of which the last n_valid form the validation split
    n_valid: int = 2
    n_test: int = 4  # held-out songs the demo evaluates on
    duration_s: float = 20.0  # seconds per song
    seed: int = 0
    # more separators of the training songs, one per song in turn (e.g. the oracle family, which reads these songs'
    # stems): the demo trains on their windows and the demo separator's together, so it sees every quality
    training_separators: list[str] = field(default_factory=list)


@dataclass
class Config(_Section):
    data: DataConfig = field(default_factory=DataConfig)
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    gate: GateConfig = field(default_factory=GateConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)

    def __post_init__(self) -> None:
        object.__setattr__(self.training, "_data_section", self.data)
