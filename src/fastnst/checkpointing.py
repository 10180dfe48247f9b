"""Checkpoint files that survive kills: write to a temp file, fsync, then rename (atomic.py)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from pytorch_lightning.plugins.io import TorchCheckpointIO

from fastnst.atomic import atomic_write
from fastnst.errors import FastNSTError, os_error_reason


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """torch.save to `path` so that a crash mid-write leaves any previous file intact (written
    to a temp file, fsynced, renamed).

    A failed write (full disk, read-only folder) removes the temp file, keeps the previous file
    and raises FastNSTError naming `path` and the reason."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path, fsync=True) as f:
            torch.save(obj, f)
    except BaseException as e:
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
