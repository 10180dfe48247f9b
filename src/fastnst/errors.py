"""Errors a user can cause. Entry points catch FastNSTError and print one line (exit 2)."""

from __future__ import annotations

import errno
import os


class FastNSTError(Exception):
    """A user-facing error: bad input file, missing style image, bad option..."""


class ImageError(FastNSTError):
    """An image file that cannot be read; the message names the file."""


class OutputExistsError(FastNSTError):
    """Refusing to overwrite an existing output without `overwrite=true`."""


def os_error_reason(e: OSError) -> str:
    """The reason part of a one-line message for a failed read or write ("no space left on
    device" for a full disk, said plainly since it is the likeliest cause of a failed write)."""
    if e.errno == errno.ENOSPC:
        return "no space left on device"
    return " ".join(str(e.strerror or e).split())


def output_exists(path, what: str = "") -> OutputExistsError:
    """The one message for an output that is already there (`what`: e.g. "loss log")."""
    return OutputExistsError(f"{path}: {what + ' ' if what else ''}already exists; pass overwrite=true to replace it")


def refuse_to_overwrite(path: str | os.PathLike, overwrite: bool, what: str = "") -> None:
    """Raise output_exists unless `overwrite` or `path` is free: called before any work starts."""
    if not overwrite and os.path.exists(path):
        raise output_exists(path, what)


def user_error_in(error: BaseException) -> BaseException:
    """hydra.utils.instantiate wraps errors raised in constructors, once per nesting level (the
    system builds the loss, which builds the VGG): the FastNSTError inside, else `error`."""
    from hydra.errors import InstantiationException

    inner = error
    while isinstance(inner, InstantiationException) and inner.__cause__ is not None:
        inner = inner.__cause__
    return inner if isinstance(inner, FastNSTError) else error
