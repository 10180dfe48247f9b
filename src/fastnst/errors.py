"""Errors a user can cause. Entry points catch FastNSTError and print one line (exit 2)."""


class FastNSTError(Exception):
    """A user-facing error: bad input file, missing style image, bad option..."""


class ImageError(FastNSTError):
    """An image file that cannot be read; the message names the file."""


class OutputExistsError(FastNSTError):
    """Refusing to overwrite an existing output without `overwrite=true`."""
