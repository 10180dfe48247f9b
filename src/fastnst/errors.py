"""Errors a user can cause. Entry points catch FastNSTError and print one line (exit 2)."""

import errno


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
