"""Logging, paths, atomic writes and typed configs (``load_config``)."""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import hashlib
import json
import logging
import os
import shutil
import socket
import tempfile
import types
import typing
from pathlib import Path
from typing import Any, Iterable, Iterator

import yaml

from ddsp_demucs import DDSPDemucsError
from ddsp_demucs.core.config import Config

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def get_logger(name: str) -> logging.Logger:
    """Return the package logger ``ddsp_demucs.<name>``."""
    return logging.getLogger(name if name.startswith("ddsp_demucs") else f"ddsp_demucs.{name}")


def setup_logging(verbose: bool = False) -> None:
    """Configure root logging once: INFO (DEBUG if ``verbose``) to stderr."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format=LOG_FORMAT, datefmt="%H:%M:%S")


def route_lightning_logging() -> None:
    """Lightning gives its ``lightning`` logger a console handler of its own, and its messages also reach the root
    logger's: once :func:`setup_logging` has configured the root, drop Lightning's so that each message prints
    once, in our format. Called by the modules that import Lightning, right after importing it."""
    if logging.getLogger().handlers:
        lightning_logger = logging.getLogger("lightning")
        for handler in list(lightning_logger.handlers):
            if type(handler) is logging.StreamHandler:
                lightning_logger.removeHandler(handler)


# --------------------------------------------------------------------------------------------- atomic writes
def current_umask() -> int:
    """The process's file-mode creation mask (read from ``/proc`` where possible: setting it to read it back is
    not thread-safe)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _temporary_prefix(path: Path) -> str:
    """Temporary siblings of ``path`` are ``.<name>.<host>.<pid>.*``: a sweep can tell whose they are."""
    return f".{path.name}.{socket.gethostname()}.{os.getpid()}."


def sweep_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Remove the temporary siblings of ``path`` that a killed writer on this host left (its process is gone);
    returns what was removed. Writers on other hosts (a shared file system) are never touched."""
    path = Path(path)
    host, removed = socket.gethostname(), []
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.{glob.escape(host)}.*.tmp*"):
        pid = tmp.name[len(f".{path.name}.{host}.") :].split(".", 1)[0]
        if not pid.isdigit() or _process_alive(int(pid)):
            continue
        shutil.rmtree(tmp, ignore_errors=True) if tmp.is_dir() else tmp.unlink(missing_ok=True)
        removed.append(tmp)
    return removed


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    Readers never see a half-written file; an interrupted write leaves nothing behind (a killed one leaves a
    temporary file, swept by the next write of ``path``). The file gets the mode a plain ``open`` would give
    (``0o666`` less the umask) and is flushed to disk before the rename, the folder after it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_temporary_prefix(path), suffix=".tmp" + path.suffix)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~current_umask())
        _fsync(tmp_path)
        os.replace(tmp_path, path)
        _fsync(path.parent)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_folder(folder: str | os.PathLike) -> Iterator[Path]:
    """Yield a new temporary folder beside ``folder`` (mode ``0o777`` less the umask); rename it onto
    ``folder`` (replacing an existing one) only if the block succeeds; stale ones are swept as in
    :func:`atomic_path`."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale_temporaries(folder)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=_temporary_prefix(folder), suffix=".tmp"))
    try:
        os.chmod(tmp, 0o777 & ~current_umask())
        yield tmp
        old = None
        if folder.exists():
            old = folder.parent / f"{tmp.name}.old"
            os.replace(folder, old)
        os.replace(tmp, folder)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        _fsync(folder.parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes, in hex (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json_atomic(path: str | os.PathLike, obj: Any) -> Path:
    return write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if dataclasses.is_dataclass(obj):
        return dataclasses.asdict(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def shard_of(items: list, num_shards: int = 1, shard_index: int = 0) -> list:
    """The part of ``items`` that shard ``shard_index`` of ``num_shards`` processes (round-robin).

    When ``num_shards`` is 1 the launcher variables SLURM_ARRAY_TASK_COUNT/SLURM_ARRAY_TASK_ID (or
    WORLD_SIZE/RANK) are used if set, so a cluster job array splits the work without extra flags.
    """
    if num_shards == 1:
        for count_var, index_var in (("SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_ID"), ("WORLD_SIZE", "RANK")):
            if os.environ.get(count_var) and os.environ.get(index_var):
                num_shards, shard_index = int(os.environ[count_var]), int(os.environ[index_var])
                break
    if num_shards < 1 or not 0 <= shard_index < num_shards:
        raise DDSPDemucsError(f"invalid sharding: shard index {shard_index} of {num_shards} shards")
    return items[shard_index::num_shards]


# ------------------------------------------------------------------------------------------------- configs
class ConfigError(DDSPDemucsError):
    """A config file or override that does not match the schema."""


def load_config(path: str | os.PathLike | None = None, overrides: Iterable[str] = ()):
    """Load a YAML config into a typed :class:`ddsp_demucs.core.config.Config`.

    A file may start with ``base: other.yaml`` (relative to itself) and then hold only what differs.
    ``overrides`` are ``section.key=value`` strings (value parsed as YAML). Unknown keys and values of the
    wrong type raise :class:`ConfigError` naming the key. ``path=None`` gives the defaults.
    """

    raw: dict = _read_yaml_with_base(Path(path)) if path is not None else {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form section.key=value")
        key, value = item.split("=", 1)
        node = raw
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {key!r}: {part!r} is not a section")
        node[parts[-1]] = yaml.safe_load(value)
    return from_dict(Config, raw, where=str(path) if path else "config")


def _read_yaml_with_base(path: Path, seen: tuple = ()) -> dict:
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    if path.resolve() in seen:
        raise ConfigError(f"{path}: circular 'base' chain")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a mapping of sections")
    base = data.pop("base", None)
    if base is None:
        return data
    merged = _read_yaml_with_base(path.parent / base, seen + (path.resolve(),))
    return _deep_merge(merged, data)


def _deep_merge(base: dict, update: dict) -> dict:
    out = dict(base)
    for key, value in update.items():
        out[key] = _deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def from_dict(cls: type, data: dict, where: str = "config"):
    """Build dataclass ``cls`` from ``data``, checking keys, types and the ranges in ``cls.LIMITS`` (name ->
    :class:`~ddsp_demucs.core.config.Range`); errors name the dotted key."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(names))})")

    def key(name: str) -> str:
        return f"{where}.{name}" if where != "config" else name

    section = cls(**{name: _coerce(hints[name], value, key(name)) for name, value in data.items()})
    for name, allowed in getattr(cls, "LIMITS", {}).items():
        problem = allowed.problem(getattr(section, name))
        if problem is not None:
            raise ConfigError(f"{key(name)}: {problem}")
    return section


def _coerce(hint: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value or {}, key)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{key}: invalid value {value!r}")
    if origin is typing.Literal:
        if value not in typing.get_args(hint):
            raise ConfigError(f"{key}: {value!r} is not one of {list(typing.get_args(hint))}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        (arg,) = typing.get_args(hint)[:1] or (Any,)
        items = [_coerce(arg, v, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if hint is Any:
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):
        try:
            return float(value)  # YAML reads 1e-3 as a string
        except ValueError:
            pass
    if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise ConfigError(f"{key}: expected {hint.__name__}, got {value!r}")
    return value


def config_to_dict(config) -> dict:
    """A plain nested dict of a config dataclass (for checkpoints and logs)."""
    return dataclasses.asdict(config)
