"""Writes that never leave a half-written file behind: the data goes to a hidden temp file
beside the target (a rename is atomic only within one file system), which replaces the target
once complete; on any failure the temp file is removed and the previous file stays intact.

An output path that is a symbolic link is never written through: the rename replaces the link
itself (with `replace=False`, a link - even a dangling one - counts as an existing file), so
the file it points to stays untouched and a dangling link never creates a file at its target."""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from fastnst.errors import FastNSTError, os_error_reason, output_exists

# temp files being written right now (removed by the SIGTERM handler of `terminate_cleanly`)
_PENDING: set[Path] = set()
EXIT_TERMINATED = 128 + 15  # the shell's code for a process ended by SIGTERM


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, replace: bool = True, tag: str = "tmp") -> Iterator[Path]:
    """Yield a temp path to write `path`'s content to, then move it into place.

    The temp name starts with `path`'s name and keeps its extension (`.out.png.1a2b3c4d.tmp.png`),
    for writers that choose a format by extension. `replace=False` refuses (OutputExistsError) a file that appeared at
    `path` since the caller checked: a hard link cannot replace, so no race with a parallel
    writer."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.{tag}{path.suffix}")
    _PENDING.add(tmp)
    try:
        yield tmp
        _publish(tmp, path, replace)
    finally:
        tmp.unlink(missing_ok=True)
        _PENDING.discard(tmp)


@contextlib.contextmanager
def terminate_cleanly(what: str = "") -> Iterator[None]:
    """Inside the block SIGTERM (`kill`, a job scheduler's stop) removes the temp files being
    written and ends the process with exit code 143 and one line, instead of dying with hidden
    `.tmp` files left beside the outputs. Outputs already written stay (`what`: a hint printed
    with the line, e.g. "rerun to finish: existing outputs are kept"). A no-op outside the
    main thread, where Python cannot install signal handlers."""
    import signal
    import sys
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_sigterm(signum, frame):
        for tmp in list(_PENDING):
            with contextlib.suppress(OSError):
                tmp.unlink()
        print(f"fastnst: terminated{f' ({what})' if what else ''}", file=sys.stderr)
        raise SystemExit(EXIT_TERMINATED)  # finally blocks (temp files, open videos) still run

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


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
        if os.path.lexists(path):
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
