"""Checkpoints on the Hugging Face Hub: ``--checkpoint hf://owner/repo/path/in/repo.ckpt``.

A reference follows the hub's own ``hf://`` grammar: ``hf://owner/repo/path/in/repo.ckpt`` (the ``main``
branch), ``hf://owner/repo@revision/path/in/repo.ckpt`` (a branch, tag or commit), and ``hf://datasets/...`` or
``hf://spaces/...`` for files in those repositories. :func:`resolve_checkpoint` downloads the file with
``huggingface_hub.hf_hub_download`` into the standard Hugging Face cache (``HF_HUB_CACHE``, else ``HF_HOME``/hub,
else ~/.cache/huggingface/hub) and returns its path there; offline (``HF_HUB_OFFLINE=1``, or the hub's endpoint
does not answer within a few seconds) the cached copy is used at once. Anything else is a local path and is
returned as it is.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ddsp_demucs import InputError
from ddsp_demucs.separation.demucs import network_available

PREFIX = "hf://"
FORMS = "hf://owner/repo/path/in/repo.ckpt or hf://owner/repo@revision/path/in/repo.ckpt"
REFERENCE = re.compile(
    r"hf://(?:(?P<kind>datasets|spaces)/)?(?P<repo>[^/@]+/[^/@]+)(?:@(?P<revision>[^/]+))?/(?P<path>[^/](?:.*[^/])?)"
)
REPO_TYPES = {None: "model", "datasets": "dataset", "spaces": "space"}


def is_hub_reference(checkpoint: str | os.PathLike) -> bool:
    """Whether ``checkpoint`` is an ``hf://`` reference rather than a local path."""
    return isinstance(checkpoint, str) and checkpoint.startswith(PREFIX)


def resolve_checkpoint(checkpoint: str | os.PathLike) -> Path:
    """The local file of ``checkpoint``: a local path as it is (a missing file is the reader's error); an
    ``hf://`` reference (module doc) downloaded into, or found in, the Hugging Face cache.

    Raises :class:`InputError` in one line for a malformed reference, a repository, revision or file the hub
    does not have, or a file neither cached nor downloadable (offline), with what to do.
    """
    if not is_hub_reference(checkpoint):
        return Path(checkpoint)
    found = REFERENCE.fullmatch(checkpoint)
    if found is None:
        raise InputError(f"{checkpoint}: not a Hugging Face checkpoint reference; expected {FORMS}")
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.utils import (
        EntryNotFoundError,
        HfHubHTTPError,
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    repo, revision, path = found["repo"], found["revision"], found["path"]
    online = network_available((constants.ENDPOINT,))  # else the cache alone, not the hub's retries for ~20 s
    try:
        return Path(
            hf_hub_download(
                repo,
                path,
                repo_type=REPO_TYPES[found["kind"]],
                revision=revision,
                library_name="ddsp-demucs",
                local_files_only=not online,
            )
        )
    except LocalEntryNotFoundError:  # before EntryNotFoundError, its base class in recent huggingface_hub
        if constants.HF_HUB_OFFLINE:
            why = "HF_HUB_OFFLINE is set"
        else:
            why = "the request failed" if online else f"no connection to {constants.ENDPOINT}"
        raise InputError(
            f"{checkpoint}: not in the Hugging Face cache ({constants.HF_HUB_CACHE}) and the hub cannot be reached "
            f"({why}); connect once, or download the file and pass its path"
        ) from None
    except RevisionNotFoundError:
        raise InputError(f"{checkpoint}: the Hugging Face repository {repo} has no revision {revision}") from None
    except EntryNotFoundError:
        raise InputError(
            f"{checkpoint}: the Hugging Face repository {repo} has no file {path} at {revision or 'main'}"
        ) from None
    except RepositoryNotFoundError:  # gated repositories included
        raise InputError(
            f"{checkpoint}: no Hugging Face repository {repo} that this machine may read (missing, private or "
            "gated: for a private one, log in with the hf command or set HF_TOKEN)"
        ) from None
    except HfHubHTTPError as exc:
        raise InputError(f"{checkpoint}: the Hugging Face Hub refused the download ({_first_line(exc)})") from None
    except HFValidationError as exc:
        raise InputError(f"{checkpoint}: not a Hugging Face checkpoint reference ({_first_line(exc)})") from None


def _first_line(exc: Exception) -> str:
    """The first line of an exception's message (its class name if it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


__all__ = ["is_hub_reference", "resolve_checkpoint"]
