"""Checkpoint files that survive kills: write to a temp file, fsync, then rename."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from pytorch_lightning.plugins.io import TorchCheckpointIO

from fastnst.errors import FastNSTError, os_error_reason


def new_file_mode() -> int:
    """The mode open() gives a new file: 0666 minus the process umask."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """torch.save to `path` so that a crash mid-write leaves any previous file intact.

    A failed write (full disk, read-only folder) removes the temp file, keeps the previous file
    and raises FastNSTError naming `path` and the reason."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fchmod(f.fileno(), new_file_mode())  # mkstemp makes 0600; outputs follow the umask
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        failed_write = e if isinstance(e, OSError) else e.__cause__ or e.__context__
        if isinstance(failed_write, OSError):  # torch.save wraps write errors in a RuntimeError
            raise FastNSTError(f"{path}: cannot write ({os_error_reason(failed_write)})") from None
        raise
    return path


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint IO with temp-file + rename writes."""

    def save_checkpoint(self, checkpoint, path, storage_options=None):
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO does not take storage_options")
        atomic_torch_save(checkpoint, path)
