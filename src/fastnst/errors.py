"""Errors a user can cause. Entry points catch FastNSTError and print one line (exit 2)."""

from __future__ import annotations

import contextlib
import errno
import functools
import math
import os
import sys

EXIT_USER_ERROR, EXIT_INTERRUPTED = 2, 130


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


def output_exists(path, what: str = "", option: str = "overwrite=true") -> OutputExistsError:
    """The one message for an output that is already there (`what`: e.g. "loss log"; `option`:
    how this program spells overwriting, e.g. "--overwrite" in a script)."""
    return OutputExistsError(
        f"{path}: {what + ' ' if what else ''}already exists; pass {option} to replace it"
    )


def refuse_to_overwrite(
    path: str | os.PathLike, overwrite: bool, what: str = "", option: str = "overwrite=true"
) -> None:
    """Raise output_exists unless `overwrite` or `path` is free: called before any work starts."""
    if not overwrite and os.path.lexists(path):  # a dangling link is there too
        raise output_exists(path, what, option)


def refuse_input_as_output(
    output: str | os.PathLike, source: str | os.PathLike, what: str = "input"
) -> None:
    """Never write over an input, whatever `overwrite` says (`what`: "content image", ...)."""
    if os.path.realpath(output) == os.path.realpath(source):
        raise FastNSTError(f"{output}: output is the {what}; refusing to overwrite an input")


def user_error_in(error: BaseException) -> BaseException:
    """hydra.utils.instantiate wraps errors raised in constructors, once per nesting level (the
    system builds the loss, which builds the VGG): the FastNSTError inside, else `error`."""
    from hydra.errors import InstantiationException

    inner = error
    while isinstance(inner, InstantiationException) and inner.__cause__ is not None:
        inner = inner.__cause__
    return inner if isinstance(inner, FastNSTError) else error


@contextlib.contextmanager
def user_errors_unwrapped():
    """Inside the block, a FastNSTError that hydra.utils.instantiate wrapped is raised as itself
    (callers of library functions see the one-line error, not Hydra's wrapper)."""
    from hydra.errors import InstantiationException

    try:
        yield
    except InstantiationException as e:
        inner = user_error_in(e)
        if inner is e:
            raise
        raise inner from None


def print_error(message: object) -> None:
    """The one-line form of a user error on stderr."""
    print(f"fastnst: error: {message}", file=sys.stderr)


def as_real_number(value) -> float | None:
    """`value` as a float when it is a real number (numpy and torch scalars too), else None:
    booleans, strings, None and containers are not numbers here. nan and infinities come back
    as they are, for the caller's range check."""
    if isinstance(value, (bool, str, bytes)) or not hasattr(value, "__float__"):
        return None
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return None


def check_weight(name: str, value) -> float:
    """`value` as a finite float >= 0 (a loss term's weight), or a one-line FastNSTError naming
    the option: a NaN weight would otherwise only surface as a diverged run."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number) or number < 0:
        raise FastNSTError(f"{name} must be a finite number >= 0, got {value!r}")
    return number


def check_in_range(name: str, value, low: float = 0.0, high: float = 1.0) -> float:
    """`value` as a float in [low, high], or a one-line FastNSTError naming the option."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise FastNSTError(
            f"{name} must be a number between {low:g} and {high:g}, got {value!r}"
        ) from None
    if not low <= value <= high:
        raise FastNSTError(f"{name} must be between {low:g} and {high:g}, got {value}")
    return value


def one_line_errors(main=None, *, interrupted: str = ""):
    """Decorator for a script's `main(argv) -> int`: a user error becomes one line on stderr and
    exit code 2, Ctrl-C exit code 130 (`interrupted`: a hint printed with it)."""

    def decorate(fn):
        @functools.wraps(fn)
        def wrapped(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except FastNSTError as e:
                print_error(e)
                return EXIT_USER_ERROR
            except KeyboardInterrupt:
                print(
                    f"fastnst: interrupted{f' ({interrupted})' if interrupted else ''}",
                    file=sys.stderr,
                )
                return EXIT_INTERRUPTED

        return wrapped

    return decorate(main) if main is not None else decorate
