"""Audio file I/O with clear errors: ``load_audio``, ``save_audio`` (atomic), ``resample``.

Waveforms at this boundary are numpy float32 ``(n_samples, n_channels)``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from ddsp_demucs import InputError
from ddsp_demucs.core.utils import atomic_path

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")


def load_audio(
    path: str | os.PathLike,
    *,
    sample_rate: int | None = None,
    min_duration_s: float = 0.0,
    allow_silent: bool = False,
) -> tuple[np.ndarray, int]:
    """Read an audio file as float32 ``(n_samples, n_channels)`` and its rate (resampled to ``sample_rate`` if given).

    Raises :class:`InputError` (message ``"<path>: <problem>"``) when the file is missing, empty,
    unreadable/corrupt, holds NaN or inf, is all zeros (unless ``allow_silent``) or is shorter than
    ``min_duration_s``.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not an audio file")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: file is empty")
    if path.suffix.lower() == ".wav":
        _check_wav_not_truncated(path)
    try:
        audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises several types for corrupt data
        if path.suffix.lower() == ".mp3" or "format not recognised" in str(exc).lower():
            audio, sr = _load_with_librosa(path, exc)
        else:
            raise InputError(f"{path}: cannot decode audio ({_short(exc)})") from None
    if audio.shape[0] == 0:
        raise InputError(f"{path}: no audio samples")
    if not np.all(np.isfinite(audio)):
        raise InputError(f"{path}: contains NaN or infinite samples")
    if not allow_silent and not np.any(audio):
        raise InputError(f"{path}: audio is silent (all samples are zero)")
    if sample_rate is not None and sr != sample_rate:
        audio, sr = resample(audio, sr, sample_rate), sample_rate
    duration = audio.shape[0] / sr
    if duration < min_duration_s:
        raise InputError(f"{path}: too short ({duration:.2f} s, need at least {min_duration_s:.2f} s)")
    return audio, sr


def _check_wav_not_truncated(path: Path) -> None:
    """Raise InputError if a RIFF/WAVE file's ``data`` chunk declares more bytes than the file holds.

    libsndfile reads a cut-off WAV without complaint, returning only what is there; a copy interrupted half-way
    would then pass as a shorter song. Streamed files that declare an unknown size (0 or 0xFFFFFFFF) and files
    that are not plain RIFF/WAVE are left to the decoder.
    """
    size = path.stat().st_size
    with open(path, "rb") as f:
        header = f.read(12)
        if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
            return
        offset = 12
        while offset + 8 <= size:
            f.seek(offset)
            chunk_id, chunk_size = f.read(4), int.from_bytes(f.read(4), "little")
            if chunk_id == b"data":
                available = size - offset - 8
                if chunk_size not in (0, 0xFFFFFFFF) and chunk_size > available:
                    raise InputError(
                        f"{path}: file is truncated (header declares {chunk_size} bytes of audio, {available} present)"
                    )
                return
            offset += 8 + chunk_size + (chunk_size & 1)


def _load_with_librosa(path: Path, first_error: Exception) -> tuple[np.ndarray, int]:
    import warnings

    try:
        import librosa

        with warnings.catch_warnings():  # its "PySoundFile failed, trying audioread" notices are not news here
            warnings.simplefilter("ignore")
            audio, sr = librosa.load(str(path), sr=None, mono=False)
    except Exception:
        raise InputError(f"{path}: cannot decode audio ({_short(first_error)})") from None
    audio = np.atleast_2d(audio).T.astype(np.float32)
    return audio, int(sr)


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:160]


def save_audio(path: str | os.PathLike, audio: np.ndarray, sample_rate: int, subtype: str = "FLOAT") -> Path:
    """Write ``audio`` ``(n_samples, n_channels)`` or ``(n_samples,)`` atomically (temp file + rename)."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[:, None]
    path = Path(path)
    fmt = {".wav": "WAV", ".flac": "FLAC"}.get(path.suffix.lower(), "WAV")
    if fmt == "FLAC":
        subtype = "PCM_24"
    with atomic_path(path) as tmp:
        sf.write(str(tmp), audio, sample_rate, subtype=subtype, format=fmt)
    return path


def resample(audio: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Polyphase resampling along axis 0 (exact length ``ceil(n * sr_out / sr_in)``), float32 out."""
    if sr_in <= 0 or sr_out <= 0:
        raise ValueError(f"sample rates must be positive, got {sr_in} and {sr_out}")
    if sr_in == sr_out:
        return np.asarray(audio, dtype=np.float32)
    g = math.gcd(int(sr_in), int(sr_out))
    out = resample_poly(np.asarray(audio, dtype=np.float64), sr_out // g, sr_in // g, axis=0)
    return out.astype(np.float32)


def list_audio_files(folder: str | os.PathLike) -> list[Path]:
    """Audio files directly or recursively under ``folder``, sorted."""
    folder = Path(folder)
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
