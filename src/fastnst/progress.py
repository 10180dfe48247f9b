"""Progress bars for long work in the commands and scripts (training's: fastnst.train_progress).

Every command takes `progress=auto|true|false` (scripts: `--progress/--no-progress`): auto shows
a bar when stderr is a terminal and stays quiet when it is piped or redirected."""

from __future__ import annotations

import sys


def show_progress(progress: bool | str | None = "auto", stream=None) -> bool:
    """Whether to draw a bar: true/false as given; auto (or None) when `stream` (stderr) is a terminal."""
    if isinstance(progress, str):
        value = progress.strip().lower()
        if value in ("auto", ""):
            progress = None
        elif value in ("true", "1", "yes", "on"):
            progress = True
        elif value in ("false", "0", "no", "off"):
            progress = False
        else:
            from fastnst.errors import FastNSTError

            raise FastNSTError(f"progress must be auto, true or false, got {progress!r}")
    if progress is None:
        stream = stream or sys.stderr
        return bool(getattr(stream, "isatty", lambda: False)())
    return bool(progress)


def bar(iterable=None, *, progress: bool | str | None = "auto", **kwargs):
    """A tqdm bar on stderr, disabled unless `show_progress(progress)`."""
    from tqdm import tqdm

    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, disable=not show_progress(progress), file=sys.stderr, **kwargs)


def add_progress_argument(parser) -> None:
    """--progress / --no-progress for an argparse script (default: a bar on a terminal only)."""
    import argparse

    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar on stderr (default: only when stderr is a terminal)",
    )
