"""Checks every entry point runs before any work starts, so that a user mistake is one line
(FastNSTError, exit code 2) instead of a traceback after minutes of work:

- `ensure_writable`: an output file or folder can be created where it was asked for;
- `option_type_error`: a command-line override has the type its option expects;
- `check_train_setup`: train.py's precision and photo folder, before Lightning starts;
- `ArgumentParser`: argparse for the scripts, with its errors in the same one-line form.
"""

from __future__ import annotations

import argparse
import collections.abc
import enum
import os
import sys
import tempfile
import types
import typing
from pathlib import Path

from fastnst.errors import (
    EXIT_USER_ERROR,
    FastNSTError,
    os_error_reason,
    output_exists,
    print_error,
)


def ensure_writable(path: str | os.PathLike, what: str = "output", folder: bool = False) -> Path:
    """Fail (FastNSTError naming `path`) unless `path` can be written: the output file `path`
    (`folder=False`) or files inside the folder `path` (`folder=True`, created later).

    The nearest existing folder is probed by creating and removing an empty temp folder in it:
    permission bits say nothing for root or read-only mounts (/sys, /proc, a read-only disk),
    a real attempt does. Nothing is left behind."""
    path = Path(path).expanduser().absolute()
    existing = path if folder else path.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise FastNSTError(f"{path}: {what} cannot be created ({existing} is a file)")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".fastnst-write-test-", dir=existing))
    except OSError as e:
        raise FastNSTError(
            f"{path}: {what} cannot be written ({existing}: {os_error_reason(e)})"
        ) from None
    return path


def check_new_output(
    path: str | os.PathLike, overwrite: bool, option: str = "overwrite=true", what: str = "output"
) -> Path:
    """A single output file before any work: not there yet unless `overwrite` (the message names
    `option`, how this program spells it: "--overwrite" in a script), and writable."""
    if not overwrite and os.path.lexists(path):  # a dangling link is there too
        raise output_exists(path, option=option)
    return ensure_writable(path, what)


# -- option types ----------------------------------------------------------------------------

# A null default carries no type: the numeric options among those, per config (the rest are
# paths, names and mappings, which take any string)
NULL_DEFAULT_TYPES = {"train": {"seed": int}, "stylize": {"size": int, "tile": int}}
# trainer.precision values train.py runs: auto (bf16-mixed on a CPU with native bf16, else
# 32-true; fastnst.train.resolve_precision), fp32, bf16 or fp16 autocast (fp16: CUDA only). The
# "-true" half precisions cast the network's inputs and style targets wrongly: refused.
TRAIN_PRECISIONS = ("auto", "32-true", "bf16-mixed", "16-mixed")
CUDA_ONLY_PRECISIONS = ("16-mixed",)
# Lightning's short spellings of the same
PRECISION_ALIASES = {"32": "32-true", "bf16": "bf16-mixed", "16": "16-mixed"}


def precision_error(value, accelerator: str | None = None) -> str | None:
    """The one-line message for a trainer.precision train.py cannot run with `accelerator`
    (cpu, gpu, auto...; None: not known yet), else None."""
    name = PRECISION_ALIASES.get(str(value), str(value))
    if value is None or (name in TRAIN_PRECISIONS and name not in CUDA_ONLY_PRECISIONS):
        return None
    choices = ", ".join(
        f"{p} (CUDA only)" if p in CUDA_ONLY_PRECISIONS else p for p in TRAIN_PRECISIONS
    )
    if name not in TRAIN_PRECISIONS:
        return f"trainer.precision expects one of {choices}, got {str(value)!r}"
    if accelerator is None or _uses_cuda(accelerator):
        return None
    on_cpu = ", ".join(p for p in TRAIN_PRECISIONS if p not in CUDA_ONLY_PRECISIONS)
    return (
        f"trainer.precision={value} needs CUDA (trainer.accelerator={accelerator}); "
        f"on CPU choose from: {on_cpu}"
    )


def _uses_cuda(accelerator: str) -> bool:
    if str(accelerator) in ("gpu", "cuda"):
        return True
    if str(accelerator) != "auto":
        return False
    import torch

    return torch.cuda.is_available()


def check_train_setup(cfg) -> None:
    """What train.py checks before Lightning or the data module starts (a new run's composed
    config, or a resumed run's saved one): the precision, and the photo folder."""
    trainer = cfg.get("trainer")
    if trainer is not None:
        message = precision_error(trainer.get("precision"), trainer.get("accelerator"))
        if message:
            raise FastNSTError(message)
    check_data_folder(cfg)


def check_data_folder(cfg) -> None:
    """data.root is a folder; when it is not, the message says where it came from (paths.data_dir:
    $FASTNST_DATA, else data/ under the repo) and how to point it elsewhere."""
    from omegaconf import OmegaConf

    from fastnst.config import resolve_user_path

    data = cfg.get("data")
    if data is None or "root" not in data or OmegaConf.is_missing(data, "root"):
        return  # data=folder without data.root: train's required-option check names it
    if data.get("root") is None:
        return
    root = resolve_user_path(data.root)
    if root.is_dir():
        return
    problem = "data folder not found" if not root.exists() else "not a folder"
    data_dir = OmegaConf.select(cfg, "paths.data_dir", default=None)
    data_dir = resolve_user_path(data_dir) if data_dir else None
    if data_dir is not None and root.is_relative_to(data_dir):
        raise FastNSTError(
            f"{root}: {problem} (data={data.get('name', 'data')} reads it under "
            f"paths.data_dir={data_dir}); set FASTNST_DATA to the data folder that holds "
            f"{root.relative_to(data_dir)}, or pass paths.data_dir=... or data.root=..."
        )
    raise FastNSTError(f"{root}: {problem} (data.root)")


def option_type_error(config_dir, config_name: str, args: list[str]) -> str | None:
    """The one-line message for the first override whose value has the wrong type, else None.

    The type an option expects: the annotation of the parameter it feeds when its section is
    built from a `_target_` (pytorch_lightning.Trainer, fastnst's classes), else the type of
    its default value (a number, true/false; NULL_DEFAULT_TYPES for the numeric options whose
    default is null). Strings, lists, other null defaults and interpolations are not checked;
    null is accepted wherever the default decides (most such options take it)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import OverrideType

    overrides = OverridesParser.create().parse_overrides(args)
    groups = [o for o in overrides if _is_group(config_dir, o)]
    values = [
        o
        for o in overrides
        if o.type == OverrideType.CHANGE
        and not o.is_sweep_override()
        and o not in groups
        and not o.key_or_group.startswith("hydra.")
    ]
    if not values:
        return None
    defaults = _compose(config_dir, config_name, [o.input_line for o in groups])
    for key, kind in NULL_DEFAULT_TYPES.get(config_name, {}).items():
        if defaults.get(key) is None:
            defaults[key] = kind()  # typed like a default of that kind (0), for the check only
    for override in values:
        message = _type_error(
            defaults, override.key_or_group, override.value(), override.input_line
        )
        if message:
            return message
    return None


def _is_group(config_dir, override) -> bool:
    key = override.key_or_group
    return "/" in key or override.package is not None or (Path(config_dir) / key).is_dir()


def _compose(config_dir, config_name: str, overrides: list[str]) -> dict:
    from omegaconf import OmegaConf

    from fastnst.config import compose

    return OmegaConf.to_container(compose(config_name, overrides, config_dir), resolve=False)


def _type_error(defaults: dict, key: str, value, input_line: str) -> str | None:
    if isinstance(value, str) and "${" in value:
        return None  # an interpolation: its type is known once resolved
    parent, _, leaf = key.rpartition(".")
    section = defaults
    for part in parent.split(".") if parent else []:
        section = section.get(part) if isinstance(section, dict) else None
    if not isinstance(section, dict) or leaf not in section:
        return None
    if key in CHECKED_BY_FASTNST:
        return CHECKED_BY_FASTNST[key](value)
    expected = _annotation(section.get("_target_"), leaf)
    if expected is not None and _accepts(section[leaf], expected) is False:
        expected = None  # the default itself is not of the target's type: fastnst translates it
    if expected is None:
        expected = _default_type(section[leaf])
        if value is None:
            return None  # options with a typed default mostly take null too (size=null, seed=null)
    if expected is None or _accepts(value, expected) is not False:
        return None
    return f"{key} expects {_describe(expected)}, got {input_line.split('=', 1)[1]!r}"


# options whose values fastnst checks itself (not from an annotation or a default's type)
CHECKED_BY_FASTNST = {"trainer.precision": precision_error}


def _annotation(target, name: str):
    """The annotation of parameter `name` of the callable a `_target_` names, else None."""
    if not isinstance(target, str) or "${" in target:
        return None
    try:
        from hydra._internal.utils import _locate

        obj = _locate(target)
        hints = typing.get_type_hints(obj.__init__ if isinstance(obj, type) else obj)
    except Exception:  # an unimportable target or unevaluable annotations: no check from them
        return None
    return hints.get(name)


class _Integer:
    """A default of int: integers, and whole floats such as 1e5."""


def _default_type(default):
    if isinstance(default, bool):
        return bool
    if isinstance(default, int):
        return _Integer
    if isinstance(default, float):
        return float
    return None


def _accepts(value, expected) -> bool | None:
    """Whether `value` (as Hydra parsed it) fits annotation `expected`; None when unknown."""
    origin = typing.get_origin(expected)
    if origin in (typing.Union, types.UnionType):
        results = [_accepts(value, member) for member in typing.get_args(expected)]
        return True if True in results else (None if None in results else False)
    if origin is typing.Literal:
        return any(value == v and type(value) is type(v) for v in typing.get_args(expected))
    if expected is type(None):
        return value is None
    if expected is typing.Any:
        return None
    if expected is _Integer:
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer()
        )
    if expected is bool:
        return isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if expected is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if expected is str:
        return value is not None and not isinstance(value, list | dict)
    if expected in (list, tuple) or origin in (list, tuple, collections.abc.Sequence):
        return isinstance(value, list)
    if expected is dict or origin in (dict, collections.abc.Mapping):
        return isinstance(value, dict)
    if (
        isinstance(expected, type)
        and not issubclass(expected, enum.Enum)
        and not isinstance(value, dict)
    ):
        # a command-line value is null, a bool, a number, a string or a list: never a Tensor,
        # a timedelta or an Accelerator (a dict may be built into one by its _target_)
        return isinstance(value, expected)
    return None


def _describe(expected) -> str:
    origin = typing.get_origin(expected)
    if origin in (typing.Union, types.UnionType):
        members = typing.get_args(expected)
        literals = [
            v for m in members if typing.get_origin(m) is typing.Literal for v in typing.get_args(m)
        ]
        parts = [_describe(m) for m in members if typing.get_origin(m) is not typing.Literal]
        if literals:  # Lightning's precision: three Literals and None -> one list
            parts.insert(0, _describe(typing.Literal[tuple(dict.fromkeys(literals))]))
        return " or ".join(dict.fromkeys(parts))
    if origin is typing.Literal:
        return "one of " + ", ".join(dict.fromkeys(str(v) for v in typing.get_args(expected)))
    names = {
        type(None): "null",
        _Integer: "an integer",
        int: "an integer",
        float: "a number",
        bool: "true or false",
        str: "a string",
        list: "a list",
        dict: "a mapping",
    }
    if expected in names:
        return names[expected]
    if origin in (list, tuple):
        return "a list"
    if origin is dict:
        return "a mapping"
    return getattr(expected, "__name__", str(expected))


# -- scripts ---------------------------------------------------------------------------------


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors (a missing argument, `--frames abc`) are one line,
    `fastnst: error: ...`, and exit code 2, like every other user error."""

    def error(self, message: str) -> typing.NoReturn:
        print_error(f"{self.prog}: {message} (--help lists the options)")
        sys.exit(EXIT_USER_ERROR)

    def check(self, check, *args, **kwargs):
        """check(*args, **kwargs) (ensure_writable, check_new_output...) with its FastNSTError
        as a usage error: one line, exit code 2 (for scripts whose main is not one_line_errors)."""
        try:
            return check(*args, **kwargs)
        except FastNSTError as e:
            print_error(e)
            sys.exit(EXIT_USER_ERROR)


__all__ = [
    "ensure_writable",
    "check_new_output",
    "option_type_error",
    "check_train_setup",
    "precision_error",
    "ArgumentParser",
]
