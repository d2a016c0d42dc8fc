"""Vocal separators: :class:`DemucsSeparator` (Hybrid Transformer Demucs, same results as ``demucs.api``),
the weight-free :class:`FallbackSeparator` (REPET-SIM soft masking) and :func:`get_separator` (by name).

Waveforms at this boundary are numpy float32 ``(n_samples, n_channels)`` at the caller's sample rate.

Weights: ``DemucsSeparator(repo=DIR)`` loads only from a local folder in Demucs' own formats (``<sig>.th`` or
``<sig>-<checksum>.th`` model packages, ``<sig>.safetensors`` files as Demucs' Hugging Face repositories hold them,
and ``<name>.yaml`` bags listing ``models: [sig, ...]``; :func:`save_safetensors_model` writes such a file). Without
``repo``, the Hugging Face cache (``adefossez/HTDemucs``...) and then the torch hub cache (Meta's ``.th`` files)
are read first, without touching the network; only when neither holds the weights is the network tried, and
only after a quick reachability check, so that a machine without internet fails within seconds with one
message (:class:`WeightsUnavailableError`) instead of minutes of retries.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import urllib.parse
import urllib.request
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ddsp_demucs import DDSPDemucsError, InputError
from ddsp_demucs.core.utils import get_logger
from ddsp_demucs.dsp import power_of_two_frame
from ddsp_demucs.separation.oracle import OracleSeparator, is_oracle_name

log = get_logger(__name__)

DEFAULT_MODEL = "htdemucs"
FALLBACK_NAME = "fallback"
META_HOST = "dl.fbaipublicfiles.com"
PROBE_TIMEOUT_S = 4.0
_DEMUCS_ONLY_KWARGS = ("shifts", "overlap", "segment", "split", "jobs", "progress")
# the model classes a local .th or .safetensors file may name (a file never chooses what code is imported)
DEMUCS_CLASSES = ("demucs.htdemucs.HTDemucs", "demucs.hdemucs.HDemucs", "demucs.demucs.Demucs")


class WeightsUnavailableError(DDSPDemucsError):
    """Demucs weights could not be loaded (not in ``repo``, not cached, and no network to download them)."""


def default_device() -> str:
    """``"cuda"`` when a CUDA GPU is usable, else ``"cpu"``."""
    return "cuda" if torch.cuda.is_available() else "cpu"


# ------------------------------------------------------------------------------------------- weight loading
def _how_to_get_weights(name: str) -> str:
    from demucs.hf import hf_repo_name
    from huggingface_hub import constants as hf_constants

    return (
        f"to get the weights of {name!r}: run once with internet (they are cached in "
        f"{hf_constants.HF_HUB_CACHE}, Hugging Face repo adefossez/{hf_repo_name(name)}, or in "
        f"{Path(torch.hub.get_dir()) / 'checkpoints'} from {META_HOST}); or pass --demucs-repo DIR, a folder "
        f"holding {name}.yaml (a bag: 'models: [sig, ...]') and the <sig>.th or <sig>.safetensors files it lists "
        f"(Demucs' own formats); or use the weight-free separator with --separator {FALLBACK_NAME} (lower quality)"
    )


def _encode_json(value):
    """Init arguments as JSON, fractions as Demucs' Hugging Face files write them (``demucs.hf`` decodes them)."""
    if isinstance(value, Fraction):
        return {"_type": "fraction", "numerator": value.numerator, "denominator": value.denominator}
    if isinstance(value, dict):
        return {key: _encode_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode_json(item) for item in value]
    return value


def save_safetensors_model(model: torch.nn.Module, path: str | os.PathLike, dtype: torch.dtype = torch.float32):
    """Write a Demucs model (built by its class, which records its init arguments) as one ``.safetensors`` file in
    the format of Demucs' Hugging Face repositories: its state in ``dtype`` (floating tensors), its class and
    init arguments as JSON metadata; atomically. ``load_demucs_model(<stem>, repo=<folder>)`` loads it back (as
    float32)."""
    from safetensors.torch import save

    from ddsp_demucs.core.utils import atomic_path

    klass = f"{type(model).__module__}.{type(model).__name__}"
    if klass not in DEMUCS_CLASSES:
        raise ValueError(f"not a Demucs model class: {klass} (expected one of {', '.join(DEMUCS_CLASSES)})")
    args, kwargs = model._init_args_kwargs  # recorded by demucs' @capture_init
    state = {k: (v.to(dtype) if v.is_floating_point() else v).contiguous() for k, v in model.state_dict().items()}
    metadata = {"klass": klass, "args": json.dumps(_encode_json(args)), "kwargs": json.dumps(_encode_json(kwargs))}
    path = Path(path)
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(save(state, metadata=metadata))
    return path


def _safetensors_model(path: Path):
    """A Demucs model from a ``.safetensors`` file of Demucs' Hugging Face format, as float32; the class it names
    must be one of :data:`DEMUCS_CLASSES` (checked before anything is imported)."""
    from demucs.hf import load_safetensors_model
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as file:
            metadata = file.metadata() or {}
    except (SafetensorError, OSError) as exc:
        raise WeightsUnavailableError(f"{path}: not readable safetensors ({str(exc).strip()[:80]})") from None
    klass = metadata.get("klass")
    if klass not in DEMUCS_CLASSES or "structure" in metadata:
        raise WeightsUnavailableError(
            f"{path}: not a Demucs model file (class {klass!r}; expected one of {', '.join(DEMUCS_CLASSES)})"
        )
    try:
        return load_safetensors_model(path).float()
    except (KeyError, ValueError, RuntimeError, TypeError) as exc:
        raise WeightsUnavailableError(f"{path}: cannot load the Demucs model ({str(exc).strip()[:120]})") from None


def _demucs_classes() -> list[type]:
    """The classes of :data:`DEMUCS_CLASSES` (a fixed list: no file chooses what is imported)."""
    import importlib

    return [getattr(importlib.import_module(name.rsplit(".", 1)[0]), name.rsplit(".", 1)[1]) for name in DEMUCS_CLASSES]


def _package_model(path: Path):
    """A Demucs model from a ``.th`` package (Demucs' own format: ``klass``, ``args``, ``kwargs``, ``state``...), read
    weights-only: tensors, plain values, fractions and the classes of :data:`DEMUCS_CLASSES`; a file holding
    anything else is refused before any of it runs."""
    import pickle

    from demucs.states import load_model

    classes = _demucs_classes()
    try:
        with torch.serialization.safe_globals([*classes, Fraction]):
            package = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, OSError, RuntimeError, EOFError, ValueError) as exc:
        # torch's weights-only error: a long explanation and, on a line of its own, the reason
        lines = [line.strip() for line in str(exc).split("WeightsUnpickler error:")[-1].splitlines() if line.strip()]
        unsafe = [line for line in str(exc).splitlines() if "unsupported global" in line.lower()]
        reason = (unsafe or lines or [type(exc).__name__])[0][:120]
        if unsafe:
            raise WeightsUnavailableError(
                f"{path}: refused: it holds more than a Demucs model's weights and arguments ({reason})"
            ) from None
        raise WeightsUnavailableError(f"{path}: not a readable Demucs model package ({reason})") from None
    if not isinstance(package, dict) or package.get("klass") not in classes or "state" not in package:
        raise WeightsUnavailableError(f"{path}: not a Demucs model package (no Demucs class and state)")
    try:
        return load_model(package)
    except (KeyError, ValueError, RuntimeError, TypeError) as exc:
        raise WeightsUnavailableError(f"{path}: cannot load the Demucs model ({str(exc).strip()[:120]})") from None


def _model_file(path: Path, checksum: str | None = None):
    """The Demucs model of a ``.th`` or ``.safetensors`` file, after checking that its SHA-256 starts with
    ``checksum`` where one is given (as ``<sig>-<checksum>.th`` names say)."""
    from demucs.repo import ModelLoadingError, check_checksum

    if checksum:
        try:
            check_checksum(path, checksum)
        except ModelLoadingError as exc:
            raise WeightsUnavailableError(str(exc)) from None
    return _safetensors_model(path) if path.suffix == ".safetensors" else _package_model(path)


def _local_model_files(repo: Path) -> dict[str, tuple[Path, str | None]]:
    """``signature -> (file, checksum or None)`` for the model files of a local repo folder: ``<sig>.th``,
    ``<sig>-<checksum>.th`` (as ``demucs.repo.LocalRepo`` reads them) and ``<sig>.safetensors``."""
    files: dict[str, tuple[Path, str | None]] = {}
    for path in sorted(repo.iterdir()):
        if path.suffix == ".th" and "-" in path.stem:
            sig, checksum = path.stem.rsplit("-", 1)
        elif path.suffix in (".th", ".safetensors"):
            sig, checksum = path.stem, None
        else:
            continue
        if sig in files:
            raise WeightsUnavailableError(f"Demucs repo {repo}: two files for model {sig!r}; delete all but one")
        files[sig] = (path, checksum)
    return files


def _bag_from_local_repo(name: str, repo: Path):
    """Load ``name`` (bag name or model signature) from a local Demucs repo folder; returns (model, sigs). As
    ``demucs.repo`` would, but every file is read weights-only (:func:`_package_model`, :func:`_safetensors_model`)."""
    import yaml
    from demucs.apply import BagOfModels

    if not repo.is_dir():
        raise WeightsUnavailableError(f"Demucs repo {repo}: not a folder; {_how_to_get_weights(name)}")
    files = _local_model_files(repo)
    bag_file = repo / f"{name}.yaml"
    if name in files:
        return _model_file(*files[name]), [name]
    if not bag_file.is_file():
        found = sorted(p.name for p in repo.iterdir() if p.suffix in (".th", ".safetensors", ".yaml"))
        found = found or ["no .th, .safetensors or .yaml files"]
        raise WeightsUnavailableError(
            f"Demucs repo {repo}: no model named {name!r} (found: {', '.join(found)}); {_how_to_get_weights(name)}"
        )
    try:
        bag = yaml.safe_load(bag_file.read_text())
        sigs = [str(sig) for sig in bag["models"]]
    except (yaml.YAMLError, KeyError, TypeError) as exc:
        raise WeightsUnavailableError(f"{bag_file}: not a Demucs bag ('models: [sig, ...]'; {exc})") from None
    missing = [sig for sig in sigs if sig not in files]
    if missing:
        raise WeightsUnavailableError(f"{bag_file}: lists {', '.join(missing)}, which {repo} does not hold")
    models = [_model_file(*files[sig]) for sig in sigs]
    return BagOfModels(models, bag.get("weights"), bag.get("segment")), sigs


def _bag_from_hf_cache(name: str):
    """Load ``name`` from the local Hugging Face cache only (no network); None if it is not all there."""
    import yaml
    from demucs.apply import BagOfModels
    from demucs.hf import DEFAULT_NAMESPACE, hf_repo_name, load_safetensors_model
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    namespace, short = name.split("/", 1) if "/" in name else (DEFAULT_NAMESPACE, name)
    repo_id = f"{namespace}/{hf_repo_name(short)}"
    try:
        bag_file = hf_hub_download(repo_id, f"{short}.yaml", local_files_only=True)
        bag = yaml.safe_load(Path(bag_file).read_text())
        files = [hf_hub_download(repo_id, f"{sig}.safetensors", local_files_only=True) for sig in bag["models"]]
    except LocalEntryNotFoundError:
        return None
    models = [load_safetensors_model(f) for f in files]
    return BagOfModels(models, bag.get("weights"), bag.get("segment")), list(bag["models"])


def _bag_from_torch_hub_cache(name: str):
    """Load ``name`` from Meta's ``.th`` files already in the torch hub cache, weights-only (:func:`_model_file`,
    checking each file's checksum); None if not all there."""
    import yaml
    from demucs.apply import BagOfModels
    from demucs.pretrained import REMOTE_ROOT, _parse_remote_files

    urls = _parse_remote_files(REMOTE_ROOT / "files.txt")
    bag_file = REMOTE_ROOT / f"{name}.yaml"
    bag = yaml.safe_load(bag_file.read_text()) if name not in urls and bag_file.is_file() else None
    if name in urls:
        sigs = [name]
    elif bag is not None:
        sigs = list(bag["models"])
    else:
        return None
    checkpoints = Path(torch.hub.get_dir()) / "checkpoints"
    files = [checkpoints / os.path.basename(urls[sig]) for sig in sigs if sig in urls]
    if len(files) != len(sigs) or not all(path.is_file() for path in files):
        return None
    models = [_model_file(path, path.stem.rsplit("-", 1)[1] if "-" in path.stem else None) for path in files]
    if bag is None:
        return models[0], sigs
    return BagOfModels(models, bag.get("weights"), bag.get("segment")), sigs


def _published_signatures(name: str) -> list[str]:
    """The signatures of bag ``name`` as demucs ships them (``demucs/remote/<name>.yaml``), else ``[name]``."""
    import yaml
    from demucs.pretrained import REMOTE_ROOT

    bag_file = REMOTE_ROOT / f"{name}.yaml"
    return list(yaml.safe_load(bag_file.read_text())["models"]) if bag_file.is_file() else [name]


def _reachable(host: str, port: int, timeout: float) -> bool:
    """Whether a TCP connection to ``host:port`` opens within ``timeout`` s (DNS included, bounded by a thread)."""
    result: list[bool] = []

    def attempt() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def network_available(urls: tuple[str, ...] | None = None, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether any of the weight servers (or the HTTPS proxy configured for them) answers within ``timeout`` s.

    ``urls`` defaults to the Hugging Face endpoint and Meta's download server. ``HF_HUB_OFFLINE=1`` means no.
    """
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return False
    if urls is None:
        from huggingface_hub import constants as hf_constants

        urls = (hf_constants.ENDPOINT, f"https://{META_HOST}")
    proxies = urllib.request.getproxies()
    targets = []
    for url in urls:
        parsed = urllib.parse.urlsplit(url)
        proxy = proxies.get(parsed.scheme) or proxies.get("all")
        if proxy and not urllib.request.proxy_bypass(parsed.hostname or ""):
            parsed = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        default_port = 443 if parsed.scheme == "https" else 80
        targets.append((parsed.hostname or "", parsed.port or default_port))
    answers: list[bool] = []
    threads = [
        threading.Thread(target=lambda t=t: answers.append(_reachable(*t, timeout)), daemon=True)
        for t in dict.fromkeys(targets)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout + 0.5)
    return any(answers)


def load_demucs_model(name: str = DEFAULT_MODEL, repo: str | os.PathLike | None = None):
    """Load a Demucs model or bag by name: ``(model, signatures)``, the model in eval mode on the CPU.

    ``repo``: a local folder in Demucs' format, the only place looked at when given. Otherwise the Hugging Face
    cache, then the torch hub cache, then (if a weight server answers within a few seconds) demucs' own download
    path (``demucs.pretrained.get_model``: Hugging Face hub, then Meta's server). ``signatures`` lists the
    models' signatures (e.g. ``["955717e8"]`` for htdemucs). Raises :class:`WeightsUnavailableError` with one
    message saying how to get the weights.
    """
    if repo is not None:
        model, sigs = _bag_from_local_repo(name, Path(repo))
        source = f"local repo {repo}"
    else:
        found = None if name.startswith("hf://") else (_bag_from_hf_cache(name) or _bag_from_torch_hub_cache(name))
        if found is not None:
            (model, sigs), source = found, "local cache"
        else:
            if not network_available():
                raise WeightsUnavailableError(
                    f"Demucs model {name!r}: weights are not in the local caches and no weight server is "
                    f"reachable (offline); {_how_to_get_weights(name)}"
                )
            from demucs.pretrained import get_model

            log.info("downloading Demucs model %r (first use; cached afterwards)", name)
            try:
                model = get_model(name)
            except (Exception, SystemExit) as exc:  # demucs raises many types, and sys.exit on some paths
                raise WeightsUnavailableError(
                    f"Demucs model {name!r}: download failed ({str(exc).strip()[:200] or type(exc).__name__}); "
                    f"{_how_to_get_weights(name)}"
                ) from None
            sigs = _published_signatures(name)
            source = "download"
    model.eval()
    log.debug("loaded Demucs %r (%s) from %s", name, "+".join(sigs), source)
    return model, sigs


def weights_digest(model: torch.nn.Module) -> str:
    """The first 12 hex digits of the SHA-256 of a model's state (names, shapes, dtypes and values in order)."""
    import hashlib

    digest = hashlib.sha256()
    for key, value in model.state_dict().items():
        digest.update(f"{key}:{tuple(value.shape)}:{value.dtype}".encode())
        digest.update(value.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:12]


# ------------------------------------------------------------------------------------------ input checking
def _as_samples_channels(mixture: Any, sample_rate: Any, max_channels: int) -> np.ndarray:
    """Validate a mixture and return it as float32 ``(n_samples, n_channels)``."""
    if not isinstance(sample_rate, (int, np.integer)) or isinstance(sample_rate, bool) or sample_rate <= 0:
        raise InputError(f"sample_rate must be a positive integer (Hz), got {sample_rate!r}")
    audio = np.asarray(mixture, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[:, None]
    if audio.ndim != 2:
        raise InputError(f"mixture must be (n_samples, n_channels) or (n_samples,), got shape {audio.shape}")
    if audio.shape[0] == 0:
        raise InputError("mixture is empty (0 samples)")
    if audio.shape[1] not in {1, max_channels}:
        hint = " (looks like (n_channels, n_samples): transpose it)" if audio.shape[0] <= max_channels else ""
        raise InputError(
            f"mixture must have 1 or {max_channels} channels as (n_samples, n_channels), got shape {audio.shape}{hint}"
        )
    if not np.all(np.isfinite(audio)):
        raise InputError("mixture contains NaN or infinite samples")
    return audio


# -------------------------------------------------------------------------------------------------- Demucs
class DemucsSeparator:
    """Hybrid Transformer Demucs (or any Demucs model or bag) with the results of ``demucs.api.Separator``.

    Args:
        model_name: a Demucs model name (``htdemucs``, ``htdemucs_ft``, ``mdx_extra``...) or signature.
        repo: local folder of weights in Demucs' format, for offline use (see :func:`load_demucs_model`).
        device: ``"cuda"``/``"cpu"``/a torch device; None picks cuda when available.
        shifts: random time shifts averaged (the "shift trick"; 0 = none; demucs' default 1 is one random shift).
        overlap: overlap between split segments (fraction).
        segment: segment length in seconds (None = the model's own).
        split: process in segments (as demucs does by default).
        jobs: CPU worker threads for segments (0 = in the calling thread).
        progress: show demucs' per-segment progress bar.

    Attributes: ``name`` (the model name), ``signature`` (``"<name>:<sig>[+<sig>...]"``), ``samplerate``,
    ``audio_channels``, ``sources``, ``params`` (the separation parameters, for manifests).
    """

    def __init__(
        self,
        model_name: str = DEFAULT_MODEL,
        repo: str | os.PathLike | None = None,
        device: str | torch.device | None = None,
        shifts: int = 1,
        overlap: float = 0.25,
        segment: float | None = None,
        split: bool = True,
        jobs: int = 0,
        progress: bool = False,
    ):
        if not isinstance(shifts, int) or shifts < 0:
            raise ValueError(f"shifts must be an integer >= 0, got {shifts!r}")
        if not 0.0 <= overlap < 1.0:
            raise ValueError(f"overlap must be in [0, 1), got {overlap!r}")
        if segment is not None and segment <= 0:
            raise ValueError(f"segment must be a positive number of seconds, got {segment!r}")
        self.model, sigs = load_demucs_model(model_name, repo)
        self.name = model_name
        # a local folder's weights can be retrained under the same signature: their digest tells them apart
        self.signature = f"{model_name}:{'+'.join(sigs)}" + ("" if repo is None else f"@{weights_digest(self.model)}")
        self.device = str(device) if device is not None else default_device()
        self.shifts, self.overlap, self.segment = shifts, float(overlap), segment
        self.split, self.jobs, self.progress = split, jobs, progress
        self.samplerate = int(self.model.samplerate)
        self.audio_channels = int(self.model.audio_channels)
        self.sources = list(self.model.sources)
        if "vocals" not in self.sources:
            raise ValueError(f"Demucs model {model_name!r} has no 'vocals' source (sources: {self.sources})")

    @property
    def params(self) -> dict:
        """The parameters that change the output (for cache manifests and reports)."""
        return {
            "shifts": self.shifts,
            "overlap": self.overlap,
            "segment": self.segment,
            "split": self.split,
            "samplerate": self.samplerate,
        }

    def separate_model_rate(self, wav: torch.Tensor) -> dict[str, torch.Tensor]:
        """Separate ``wav`` ``(audio_channels, n)`` at ``samplerate`` -> ``{source: (audio_channels, n)}``.

        Exactly ``demucs.api.Separator.separate_tensor``'s computation: normalise by the mean and standard
        deviation of the channel-averaged mixture, ``apply_model``, undo the normalisation.
        """
        from demucs.apply import apply_model

        ref = wav.mean(0)
        mean = ref.mean()
        std = ref.std() + 1e-8
        out = apply_model(
            self.model,
            ((wav - mean) / std)[None],
            segment=self.segment,
            shifts=self.shifts,
            split=self.split,
            overlap=self.overlap,
            device=self.device,
            num_workers=self.jobs,
            progress=self.progress,
        )
        out = out * std + mean
        return dict(zip(self.sources, out[0]))

    def separate(self, mixture: np.ndarray, sample_rate: int) -> dict[str, np.ndarray]:
        """Separate ``mixture`` ``(n_samples, n_channels)`` (or ``(n_samples,)``) at ``sample_rate`` Hz.

        Returns ``{source: (n_samples, n_channels) float32}`` (``drums, bass, other, vocals`` for htdemucs) at the
        mixture's rate, channel count and length. A mono mixture is duplicated to the model's channels and the
        sources averaged back to mono; other rates are resampled (julius, as demucs) to the model's rate and back.
        """
        import julius
        from demucs.audio import convert_audio

        audio = _as_samples_channels(mixture, sample_rate, self.audio_channels)
        n_samples, n_channels = audio.shape
        wav = convert_audio(
            torch.from_numpy(np.ascontiguousarray(audio.T)), int(sample_rate), self.samplerate, self.audio_channels
        )
        stems = self.separate_model_rate(wav)
        out = {}
        for source, stem in stems.items():
            if sample_rate != self.samplerate:
                stem = julius.resample_frac(stem, self.samplerate, int(sample_rate), output_length=n_samples)
            if n_channels == 1:
                stem = stem.mean(0, keepdim=True)
            out[source] = np.ascontiguousarray(stem.T.cpu().numpy(), dtype=np.float32)
        return out

    def extract_vocals(self, mixture: np.ndarray, sample_rate: int = 44100) -> np.ndarray:
        """The vocal stem of ``mixture``: ``(n_samples, n_channels)`` float32 at ``sample_rate`` Hz."""
        return self.separate(mixture, sample_rate)["vocals"]

    def __repr__(self) -> str:
        return f"DemucsSeparator({self.signature!r}, device={self.device!r}, params={self.params})"


# ------------------------------------------------------------------------------------------------ fallback
def repeating_background(
    magnitude: np.ndarray, *, n_neighbors: int, min_gap: int, max_distance: int, block: int = 256
) -> np.ndarray:
    """REPET-SIM background estimate: per frame, the element-wise median of its most similar frames.

    ``magnitude (n_bins, n_frames)`` (non-negative) -> ``(n_bins, n_frames)``. Frames are compared by cosine
    similarity; the ``n_neighbors`` most similar frames at least ``min_gap`` and at most ``max_distance`` frames
    away are used (fewer where fewer exist; the frame itself when none does). Computed in blocks of ``block``
    frames, so memory grows linearly with the length.
    """
    mag = np.asarray(magnitude, dtype=np.float32)
    n_bins, n_frames = mag.shape
    unit = mag / (np.linalg.norm(mag, axis=0, keepdims=True) + 1e-12)
    background = np.empty_like(mag)
    for start in range(0, n_frames, block):
        stop = min(n_frames, start + block)
        lo, hi = max(0, start - max_distance), min(n_frames, stop + max_distance)
        sim = unit[:, start:stop].T @ unit[:, lo:hi]
        distance = np.abs(np.arange(start, stop)[:, None] - np.arange(lo, hi)[None, :])
        valid = (distance >= min_gap) & (distance <= max_distance)
        sim = np.where(valid, sim, -np.inf)
        k = int(min(n_neighbors, valid.sum(axis=1).max()))
        if k == 0:
            background[:, start:stop] = mag[:, start:stop]
            continue
        nearest = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        chosen = np.take_along_axis(valid, nearest, axis=1)
        frames = mag[:, lo + nearest]  # (n_bins, frames in block, k)
        if chosen.all():
            background[:, start:stop] = np.median(frames, axis=2)
            continue
        frames = np.where(chosen[None], frames, np.nan)
        alone = ~chosen.any(axis=1)
        frames[:, alone, 0] = mag[:, start:stop][:, alone]
        background[:, start:stop] = np.nanmedian(frames, axis=2)
    return background


class FallbackSeparator:
    """Weight-free vocal separator: REPET-SIM soft masking with a vocal band and centre-channel emphasis.

    The repeating accompaniment is the median of each STFT frame's most similar frames (REPET-SIM, Rafii and
    Pardo 2012); the vocals are what does not repeat, taken with the soft ratio mask
    ``V / (V + B)`` (``V = |X| - B``, ``B = min(|X|, median of similar frames)``, on the channel-mean
    magnitude), kept only between ``low_hz`` and ``high_hz`` and, for stereo, weighted by how centred each bin
    is (``1 - ||L| - |R|| / (|L| + |R|)``).
    Much weaker than Demucs; use it only when no Demucs weights can be had. ``name`` is ``"fallback"``.
    """

    name = FALLBACK_NAME
    sources = ["vocals", "accompaniment"]

    def __init__(
        self,
        frame_s: float = 0.046,
        n_neighbors: int = 40,
        min_gap_s: float = 1.0,
        max_distance_s: float = 30.0,
        low_hz: float = 80.0,
        high_hz: float = 8000.0,
        centre_weight: bool = True,
    ):
        if low_hz < 0 or high_hz <= low_hz:
            raise ValueError(f"need 0 <= low_hz < high_hz, got {low_hz} and {high_hz}")
        self.frame_s, self.n_neighbors, self.min_gap_s = frame_s, n_neighbors, min_gap_s
        self.max_distance_s, self.low_hz, self.high_hz, self.centre_weight = (
            max_distance_s,
            low_hz,
            high_hz,
            centre_weight,
        )
        self.signature = "fallback-repet-sim-v1"

    @property
    def params(self) -> dict:
        return {
            "frame_s": self.frame_s,
            "n_neighbors": self.n_neighbors,
            "min_gap_s": self.min_gap_s,
            "max_distance_s": self.max_distance_s,
            "low_hz": self.low_hz,
            "high_hz": self.high_hz,
            "centre_weight": self.centre_weight,
        }

    def vocal_mask(self, stft: np.ndarray, sample_rate: int, hop: int) -> np.ndarray:
        """Soft vocal mask in [0, 1] ``(n_bins, n_frames)`` for ``stft`` ``(n_channels, n_bins, n_frames)``."""
        mag = np.abs(stft).astype(np.float32)
        mono = mag.mean(axis=0)
        frames_per_s = sample_rate / hop
        background = repeating_background(
            mono,
            n_neighbors=self.n_neighbors,
            min_gap=max(1, round(self.min_gap_s * frames_per_s)),
            max_distance=max(2, round(self.max_distance_s * frames_per_s)),
        )
        background = np.minimum(mono, background)
        vocal = mono - background
        mask = vocal / (vocal + background + 1e-12)
        freqs = np.arange(mag.shape[1]) * sample_rate / (2 * (mag.shape[1] - 1))
        mask[(freqs < self.low_hz) | (freqs > self.high_hz)] = 0.0
        if self.centre_weight and mag.shape[0] == 2:
            mask *= 1.0 - np.abs(mag[0] - mag[1]) / (mag[0] + mag[1] + 1e-12)
        return mask

    def separate(self, mixture: np.ndarray, sample_rate: int) -> dict[str, np.ndarray]:
        """``mixture (n_samples, n_channels)`` at ``sample_rate`` Hz -> ``{"vocals", "accompaniment"}``, each
        ``(n_samples, n_channels)`` float32; ``accompaniment = mixture - vocals``."""
        from scipy.signal import istft, stft

        audio = _as_samples_channels(mixture, sample_rate, 2)
        n_fft = power_of_two_frame(int(sample_rate), self.frame_s)
        hop = n_fft // 4
        x = audio.T.astype(np.float64)
        _, _, spec = stft(x, nperseg=n_fft, noverlap=n_fft - hop, window="hann", boundary="even", padded=True)
        mask = self.vocal_mask(spec, int(sample_rate), hop)
        _, vocals = istft(spec * mask[None], nperseg=n_fft, noverlap=n_fft - hop, window="hann", boundary=True)
        vocals = vocals[:, : audio.shape[0]]
        if vocals.shape[1] < audio.shape[0]:
            vocals = np.pad(vocals, ((0, 0), (0, audio.shape[0] - vocals.shape[1])))
        vocals = np.ascontiguousarray(vocals.T, dtype=np.float32)
        return {"vocals": vocals, "accompaniment": audio - vocals}

    def extract_vocals(self, mixture: np.ndarray, sample_rate: int = 44100) -> np.ndarray:
        """The vocal estimate of ``mixture``: ``(n_samples, n_channels)`` float32 at ``sample_rate`` Hz."""
        return self.separate(mixture, sample_rate)["vocals"]

    def __repr__(self) -> str:
        return f"FallbackSeparator({self.signature!r}, params={self.params})"


# ---------------------------------------------------------------------------------------------- training songs
def training_songs_warning(separator_name: str, songs_root: str | os.PathLike, songs: list[str]) -> str | None:
    """A one-line warning when a Demucs separator's vocals of MUSDB18-HQ training songs are used to train a
    refiner: every released Demucs model learned from MUSDB18-HQ's train folder, so its separations of those songs
    are far cleaner than of a user's, and a refiner trained on them learns to change too little. ``songs`` are the
    track names used from ``songs_root``; None when nothing is amiss (the fallback, oracle separators, this
    project's own corpora, or only test songs)."""
    root = Path(songs_root)
    if separator_name == FALLBACK_NAME or is_oracle_name(separator_name) or (root / "manifest.json").is_file():
        return None
    seen = [name for name in songs if (root / "train" / name).is_dir()]
    if not seen:
        return None
    return (
        f"{separator_name} was trained on MUSDB18-HQ's training songs, and {len(seen)} of the songs used here are "
        f"in {root / 'train'}: its vocals of them are unrealistically clean, so a refiner trained on them learns "
        "to change too little; train on songs the separator never saw (MUSDB18-HQ test/, or your own with stems)"
    )


# ---------------------------------------------------------------------------------------------- by name
def get_separator(
    name: str = "auto", repo: str | os.PathLike | None = None, device: str | torch.device | None = None, **kwargs
):
    """A separator by name: any Demucs model name (``htdemucs``, ``htdemucs_ft``, ``mdx_extra``...),
    ``"fallback"`` (:class:`FallbackSeparator`), an oracle separator of controlled quality for songs with true
    stems (``oracle``, ``oracle-bands16``...: :mod:`ddsp_demucs.separation.oracle`), or ``"auto"``: htdemucs when its
    weights can be loaded (from ``repo``, the caches, or a download), otherwise the fallback, with a warning in
    the log.

    ``kwargs`` go to :class:`DemucsSeparator` (``shifts``, ``overlap``, ``segment``...); the fallback ignores
    those and takes its own (``n_neighbors``...).
    """
    if is_oracle_name(name):
        return OracleSeparator.from_name(name)
    if name == FALLBACK_NAME:
        return FallbackSeparator(**{k: v for k, v in kwargs.items() if k not in _DEMUCS_ONLY_KWARGS})
    if name == "auto":
        try:
            return DemucsSeparator(DEFAULT_MODEL, repo=repo, device=device, **kwargs)
        except WeightsUnavailableError as exc:
            log.warning(
                "separator 'auto': Demucs %s is unavailable, so the weight-free %r separator (REPET-SIM, "
                "much lower quality) is used and outputs are labelled %r. Reason: %s",
                DEFAULT_MODEL,
                FALLBACK_NAME,
                FALLBACK_NAME,
                exc,
            )
            return FallbackSeparator(**{k: v for k, v in kwargs.items() if k not in _DEMUCS_ONLY_KWARGS})
    return DemucsSeparator(name, repo=repo, device=device, **kwargs)


__all__ = [
    "DemucsSeparator",
    "FallbackSeparator",
    "WeightsUnavailableError",
    "default_device",
    "get_separator",
    "load_demucs_model",
    "network_available",
    "weights_digest",
    "repeating_background",
    "training_songs_warning",
]
