"""Writes that never leave a half-written file behind: the data goes to a hidden temp file
beside the target (a rename is atomic only within one file system), which replaces the target
once complete; on any failure the temp file is removed and the previous file stays intact."""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from fastnst.errors import FastNSTError, os_error_reason, output_exists


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, replace: bool = True, tag: str = "tmp") -> Iterator[Path]:
    """Yield a temp path to write `path`'s content to, then move it into place.

    The temp name starts with `path`'s name and keeps its extension (`.out.png.1a2b3c4d.tmp.png`),
    for writers that choose a format by extension. `replace=False` refuses (OutputExistsError) a file that appeared at
    `path` since the caller checked: a hard link cannot replace, so no race with a parallel
    writer."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.{tag}{path.suffix}")
    try:
        yield tmp
        _publish(tmp, path, replace)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_write(
    path: str | os.PathLike, replace: bool = True, fsync: bool = False
) -> Iterator[BinaryIO]:
    """`atomic_path` as an open binary file. The new file's mode follows the umask (0666 minus
    it), like any file the user creates; `fsync` flushes it to disk before the rename (for
    checkpoints, which must survive a power cut)."""
    with atomic_path(path, replace) as tmp:
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), "wb") as f:
            yield f
            if fsync:
                f.flush()
                os.fsync(f.fileno())


def _publish(tmp: Path, path: Path, replace: bool) -> None:
    if replace:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise output_exists(path) from None
    except OSError:  # file systems without hard links: a plain (atomic) rename
        if path.exists():
            raise output_exists(path) from None
        os.replace(tmp, path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json(path: str | os.PathLike, payload, **dump_options) -> Path:
    return write_text(path, json.dumps(payload, **dump_options))


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """torch.save to `path` so that a crash mid-write leaves any previous file intact (written
    to a temp file, fsynced, renamed).

    A failed write (full disk, read-only folder) removes the temp file, keeps the previous file
    and raises FastNSTError naming `path` and the reason."""
    import torch

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
