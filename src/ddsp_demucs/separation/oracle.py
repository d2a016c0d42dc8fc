"""Oracle separators: separations of controlled quality, made from a song's true vocal.

An oracle separator knows the true vocal ``v`` of a song and so the true accompaniment ``a = mixture - v``. Its
starting point is the ideal (Wiener) ratio mask ``|V|^2 / (|V|^2 + |A|^2)`` on the STFT of the mixture
(window about 46 ms, a quarter of it as hop: 2048 / 512 at 44.1 kHz), applied to the mixture with its phase, per
channel. Each degradation mimics an error of real separators, and they are applied in this order:

``bands B``   spectral resolution: the energies ``|V|^2``, ``|A|^2`` are summed over ``B`` log-spaced bands
              (40 Hz to Nyquist; lower bins join the first band) before the ratio, so the mask is constant
              within a band: accompaniment inside the voice's bands leaks through, voice between partials is
              kept;
``smooth S``  temporal resolution: the same energies averaged over ``S`` seconds (a centred moving average of
              the STFT frames), so the mask lags onsets and smears note ends;
``exp P``     over- (``P > 1``) or under-suppression (``P < 1``): the mask raised to ``P``;
``err E``     random mask error: Gaussian noise of standard deviation ``E`` added to the mask's logit, drawn on
              a coarse grid (one value per 8 bins x 8 frames, bilinearly interpolated) so that errors are
              correlated over neighbouring bins and frames as a network's are; seeded by the mixture's
              content, so a song always gets the same error;
``floor F``   bleed: the mask never falls below ``F`` (``F + (1 - F) mask``), so accompaniment is heard where
              the voice is silent, as users of htdemucs_ft report.

Names spell the settings: ``oracle`` (the ideal mask at every bin), ``oracle-bands16``,
``oracle-smooth0.2-err1``, ``oracle-bands32-floor0.05``... (:func:`parse_oracle_name`). An oracle separator
needs the song's true vocal: ``separate(mixture, sample_rate, vocals=true_vocal)``; without it (a song file
with no stems) it raises a one-line :class:`~ddsp_demucs.InputError`. These are proxies for real separators,
which also err in ways no mask on the mixture can (artefacts, phase); a benchmark reports them beside a real
separator.

:func:`oracle_refinement` is the same knowledge turned on a refiner: how far a mask on a separated vocal, or
giving back part of the accompaniment estimate, could take a separation at best.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass

import numpy as np

from ddsp_demucs import InputError
from ddsp_demucs.dsp import power_of_two_frame

ORACLE_PREFIX = "oracle"
FRAME_S = 2048 / 44100  # STFT window duration; hop = window / 4
LOWEST_BAND_HZ = 40.0
ERROR_GRID = 8  # random mask error: one draw per ERROR_GRID bins x ERROR_GRID frames
_TOKEN = re.compile(r"^(bands|smooth|exp|err|floor)(\d+(?:\.\d+)?)$")
_KEYS = {"bands": "bands", "smooth": "smooth_s", "exp": "exponent", "err": "error", "floor": "floor"}


@dataclass(frozen=True)
class OracleDegradation:
    """How an oracle separator degrades the ideal ratio mask (see the module docstring).

    ``bands``: number of log-spaced bands the mask is pooled into (None: every bin); ``smooth_s``: seconds of
    temporal averaging (0: none); ``exponent``: the mask's power; ``error``: standard deviation of the logit
    noise; ``floor``: the smallest mask value, in [0, 1).
    """

    bands: int | None = None
    smooth_s: float = 0.0
    exponent: float = 1.0
    error: float = 0.0
    floor: float = 0.0

    def __post_init__(self):
        if self.bands is not None and self.bands < 1:
            raise InputError(f"oracle separator: bands must be >= 1, got {self.bands}")
        if self.smooth_s < 0 or self.exponent <= 0 or self.error < 0 or not 0 <= self.floor < 1:
            raise InputError(
                f"oracle separator: need smooth >= 0, exp > 0, err >= 0 and 0 <= floor < 1, got {asdict(self)}"
            )

    @property
    def name(self) -> str:
        """The separator name that spells these settings (the inverse of :func:`parse_oracle_name`)."""
        parts = [ORACLE_PREFIX]
        if self.bands is not None:
            parts.append(f"bands{self.bands}")
        for attr, token, default in (
            ("smooth_s", "smooth", 0.0),
            ("exponent", "exp", 1.0),
            ("error", "err", 0.0),
            ("floor", "floor", 0.0),
        ):
            value = getattr(self, attr)
            if value != default:
                parts.append(f"{token}{value:g}")
        return "-".join(parts)


def is_oracle_name(name: str) -> bool:
    """Whether ``name`` names an oracle separator (``oracle`` or ``oracle-...``)."""
    return name == ORACLE_PREFIX or name.startswith(ORACLE_PREFIX + "-")


def parse_oracle_name(name: str) -> OracleDegradation:
    """``"oracle-bands16-floor0.05"`` -> ``OracleDegradation(bands=16, floor=0.05)``; a malformed name is a
    one-line InputError listing the accepted tokens."""
    if not is_oracle_name(name):
        raise InputError(f"{name!r} is not an oracle separator name (oracle or oracle-<token>-...)")
    values: dict[str, float | int] = {}
    for token in name.split("-")[1:]:
        match = _TOKEN.match(token)
        if match is None or _KEYS[match.group(1)] in values:
            raise InputError(
                f"separator {name!r}: cannot read {token!r}; an oracle name is 'oracle' followed by any of "
                "-bandsB (integer), -smoothS (seconds), -expP, -errE, -floorF, each at most once"
            )
        key, number = _KEYS[match.group(1)], match.group(2)
        if key == "bands" and "." in number:
            raise InputError(f"separator {name!r}: bands must be a whole number, got {number}")
        values[key] = int(number) if key == "bands" else float(number)
    return OracleDegradation(**values)


def band_of_bins(n_bins: int, sample_rate: int, n_bands: int) -> np.ndarray:
    """Band index ``(n_bins,)`` of each STFT bin for ``n_bands`` log-spaced bands from :data:`LOWEST_BAND_HZ` to
    Nyquist (bins below the lowest edge belong to band 0)."""
    freqs = np.arange(n_bins) * (sample_rate / 2) / (n_bins - 1)
    edges = np.geomspace(LOWEST_BAND_HZ, sample_rate / 2, n_bands + 1)
    return np.clip(np.searchsorted(edges, freqs, side="right") - 1, 0, n_bands - 1)


def _pool_bands(power: np.ndarray, bands: np.ndarray, n_bands: int) -> np.ndarray:
    """Sum ``power (ch, bins, frames)`` over the bins of each band and spread it back to every bin."""
    pooled = np.zeros((power.shape[0], n_bands, power.shape[2]))
    np.add.at(pooled, (slice(None), bands), power)
    return pooled[:, bands]


def _smooth_frames(power: np.ndarray, n_frames: int) -> np.ndarray:
    """Centred moving average of ``power (ch, bins, frames)`` over ``n_frames`` frames (edges: nearest)."""
    from scipy.ndimage import uniform_filter1d

    return uniform_filter1d(power, size=n_frames, axis=-1, mode="nearest") if n_frames > 1 else power


def correlated_noise(shape: tuple[int, int, int], rng: np.random.Generator) -> np.ndarray:
    """Unit-variance-at-grid-points Gaussian noise ``shape (ch, bins, frames)``, drawn every :data:`ERROR_GRID`
    bins and frames and bilinearly interpolated in between."""
    from scipy.ndimage import map_coordinates

    ch, n_bins, n_frames = shape
    coarse = rng.standard_normal((ch, n_bins // ERROR_GRID + 2, n_frames // ERROR_GRID + 2))
    rows, cols = np.meshgrid(np.arange(n_bins) / ERROR_GRID, np.arange(n_frames) / ERROR_GRID, indexing="ij")
    return np.stack([map_coordinates(c, [rows, cols], order=1) for c in coarse])


def degraded_mask(
    vocal_stft: np.ndarray,
    accompaniment_stft: np.ndarray,
    sample_rate: int,
    hop: int,
    degradation: OracleDegradation,
    rng: np.random.Generator,
) -> np.ndarray:
    """The degraded ratio mask in [0, 1], ``(ch, bins, frames)``, from the true vocal's and accompaniment's STFTs
    (same shape, complex) at ``sample_rate`` with ``hop`` samples between frames."""
    d = degradation
    pv, pa = np.abs(vocal_stft) ** 2, np.abs(accompaniment_stft) ** 2
    if d.bands is not None:
        bands = band_of_bins(pv.shape[1], sample_rate, d.bands)
        pv, pa = _pool_bands(pv, bands, d.bands), _pool_bands(pa, bands, d.bands)
    width = round(d.smooth_s * sample_rate / hop)
    pv, pa = _smooth_frames(pv, width), _smooth_frames(pa, width)
    total = pv + pa
    mask = np.divide(pv, total, out=np.zeros_like(pv), where=total > 0)
    if d.exponent != 1.0:
        mask = mask**d.exponent
    if d.error > 0:
        clipped = np.clip(mask, 1e-4, 1 - 1e-4)
        logit = np.log(clipped / (1 - clipped)) + d.error * correlated_noise(mask.shape, rng)
        mask = 1.0 / (1.0 + np.exp(-logit))
    return d.floor + (1.0 - d.floor) * mask


class OracleSeparator:
    """A separator that degrades the ideal ratio mask of a song whose true vocal it is given (module docstring).

    ``separate(mixture, sample_rate, vocals=...)`` -> ``{"vocals", "accompaniment"}``, each ``(n_samples,
    n_channels)`` float32 like the mixture; ``accompaniment = mixture - vocals``. ``name`` spells the settings.
    """

    needs_true_vocals = True
    sources = ["vocals", "accompaniment"]

    def __init__(self, degradation: OracleDegradation | None = None):
        self.degradation = degradation or OracleDegradation()
        self.name = self.degradation.name
        self.signature = "oracle-ratio-mask-v1"

    @classmethod
    def from_name(cls, name: str) -> OracleSeparator:
        return cls(parse_oracle_name(name))

    @property
    def params(self) -> dict:
        return asdict(self.degradation)

    def separate(self, mixture: np.ndarray, sample_rate: int, vocals: np.ndarray | None = None) -> dict:
        if vocals is None:
            raise InputError(
                f"separator {self.name} needs the song's true vocal, and this song has none: oracle separators "
                "work on songs with stems (separate --musdb, evaluate --songs, corpus building)"
            )
        mix = np.asarray(mixture, dtype=np.float64)
        true = np.asarray(vocals, dtype=np.float64)
        if mix.ndim != 2 or true.shape != mix.shape:
            raise InputError(f"{self.name}: the true vocal {true.shape} must have the mixture's shape {mix.shape}")
        _, hop = stft_grid(int(sample_rate))
        spectra = [channel_spectra(x, int(sample_rate)) for x in (mix, true)]
        digest = hashlib.sha1(np.ascontiguousarray(mixture, dtype="<f4").tobytes()).digest()
        rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
        mask = degraded_mask(spectra[1], spectra[0] - spectra[1], int(sample_rate), hop, self.degradation, rng)
        out = channel_signals(spectra[0] * mask, int(sample_rate), mix.shape[0])
        return {"vocals": out, "accompaniment": np.asarray(mixture, dtype=np.float32) - out}

    def __repr__(self) -> str:
        return f"OracleSeparator({self.name!r})"


def stft_grid(sample_rate: int) -> tuple[int, int]:
    """The oracle STFT's window and hop at ``sample_rate``: a Hann window of about :data:`FRAME_S` (a power of two:
    2048 at 44.1 kHz) and a quarter of it."""
    n_fft = power_of_two_frame(sample_rate, FRAME_S)
    return n_fft, n_fft // 4


def channel_spectra(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """``(n_channels, n_bins, n_frames)`` complex STFT of ``audio (n_samples, n_channels)`` on the oracle grid
    (:func:`stft_grid`)."""
    from scipy.signal import stft

    n_fft, hop = stft_grid(sample_rate)
    x = np.asarray(audio, dtype=np.float64).T
    return stft(x, nperseg=n_fft, noverlap=n_fft - hop, window="hann", boundary="even", padded=True)[2]


def channel_signals(spectra: np.ndarray, sample_rate: int, n_samples: int) -> np.ndarray:
    """The inverse of :func:`channel_spectra`: ``(n_samples, n_channels)`` float32."""
    from scipy.signal import istft

    n_fft, hop = stft_grid(sample_rate)
    _, audio = istft(spectra, nperseg=n_fft, noverlap=n_fft - hop, window="hann", boundary=True)
    audio = audio[:, :n_samples]
    if audio.shape[1] < n_samples:
        audio = np.pad(audio, ((0, 0), (0, n_samples - audio.shape[1])))
    return np.ascontiguousarray(audio.T, dtype=np.float32)


ORACLE_BOUNDS = ("mask", "restore")


def oracle_refinement(
    separated: np.ndarray, mixture: np.ndarray, true_vocals: np.ndarray, sample_rate: int, kind: str
) -> np.ndarray:
    """What a refiner that knew the true vocal ``V`` could make of a separation ``S`` of ``mixture`` ``M``: a bound
    on what refinement of that kind can gain, per channel on the oracle STFT grid (:func:`channel_spectra`).

    ``kind`` ``"mask"``: ``S min(1, |V| / |S|)``, the closest magnitude a mask in [0, 1] on the separated vocal
    reaches (its phase kept); ``"restore"``: ``S + g (M - S)`` with ``g`` in [0, 1] in each bin the share of the
    accompaniment estimate that brings it closest to ``V`` (least squares, ``g = clip(Re((V - S) conj(M - S)) /
    |M - S|^2, 0, 1)``): vocal the separator left in the accompaniment, given back. Arrays ``(n_samples,
    n_channels)``, all of one shape; returns float32 of that shape.
    """
    if kind not in ORACLE_BOUNDS:
        raise ValueError(f"kind must be one of {ORACLE_BOUNDS}, got {kind!r}")
    shapes = {np.shape(x) for x in (separated, mixture, true_vocals)}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise ValueError(f"separated, mixture and true vocals need one (n_samples, n_channels) shape, got {shapes}")
    sep, mix, true = (channel_spectra(x, sample_rate) for x in (separated, mixture, true_vocals))
    tiny = np.finfo(np.float64).tiny
    if kind == "mask":
        refined = sep * np.minimum(1.0, np.abs(true) / np.maximum(np.abs(sep), tiny))
    else:
        rest = mix - sep
        share = np.real((true - sep) * np.conj(rest)) / np.maximum(np.abs(rest) ** 2, tiny)
        refined = sep + np.clip(share, 0.0, 1.0) * rest
    return channel_signals(refined, sample_rate, np.shape(separated)[0])


def separate_song(separator, mixture: np.ndarray, sample_rate: int, true_vocals: np.ndarray | None) -> dict:
    """``separator.separate(mixture, sample_rate)``, passing ``true_vocals`` to separators that need them (oracle
    separators; they raise a one-line InputError when it is None)."""
    if getattr(separator, "needs_true_vocals", False):
        return separator.separate(mixture, sample_rate, vocals=true_vocals)
    return separator.separate(mixture, sample_rate)


__all__ = [
    "ORACLE_BOUNDS",
    "OracleDegradation",
    "OracleSeparator",
    "band_of_bins",
    "channel_signals",
    "channel_spectra",
    "correlated_noise",
    "degraded_mask",
    "is_oracle_name",
    "oracle_refinement",
    "parse_oracle_name",
    "separate_song",
    "stft_grid",
]
