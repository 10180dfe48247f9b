"""--help generated from a config file: every top-level key with its current value and the
comment written above it in the YAML, so the help lists every option the program accepts and
cannot drift from the config. The help templates call it through the `${fastnst_options:NAME}`
resolver (registered in fastnst.config), e.g. conf/inference/stylize.yaml. Reads no other
fastnst module."""

from __future__ import annotations

import os
import re
import textwrap
from pathlib import Path

from omegaconf import OmegaConf

# keys every entry point has that need no line in an option list
SKIP = ("defaults", "hydra")
KEY = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*):")
WIDTH = 100
COLUMN = 26  # where the descriptions start


def documented_keys(text: str) -> dict[str, str]:
    """{top-level key: the comment block right above it, as one paragraph} of a YAML config
    (keys in file order; a key with no comment maps to "")."""
    keys: dict[str, str] = {}
    comment: list[str] = []
    for line in text.splitlines():
        if line.startswith("#"):
            comment.append(line.lstrip("#").strip())
            continue
        match = KEY.match(line)
        if match and match.group(1) not in SKIP:
            keys[match.group(1)] = " ".join(c for c in comment if c)
        if line.strip() == "" or not line.startswith(" "):
            comment = []
    return keys


def _value(root, key: str) -> str:
    if OmegaConf.is_missing(root, key):
        return "required"
    value = root[key]
    if OmegaConf.is_config(value):
        value = OmegaConf.to_container(value, resolve=True)
    return (
        "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    )


def options_help(config_file: str | os.PathLike, root=None) -> str:
    """The option list of a config file (e.g. fastnst's conf/inference/stylize.yaml):
    `  key [current value]` then its comment, wrapped. `root`: the composed config the current
    values come from (default: the file's own values)."""
    text = Path(config_file).read_text()
    root = root if root is not None else OmegaConf.create(text)
    lines = []
    for key, comment in documented_keys(text).items():
        head = f"  {key} [{_value(root, key)}]"
        body = textwrap.wrap(comment, WIDTH - COLUMN) or [""]
        if len(head) < COLUMN - 1:
            lines.append(head.ljust(COLUMN) + body[0])
            body = body[1:]
        else:
            lines.append(head)
        lines += [" " * COLUMN + b for b in body if b]
    return "\n".join(lines)


def help_resolver(config_file: str | os.PathLike, _root_) -> str:
    """${fastnst_options:NAME} in a Hydra help template (fastnst.config passes the file of NAME):
    options_help with the values of the composed config; a literal $ (e.g. $FASTNST_DATA)
    escaped for the template's string.Template substitution."""
    return options_help(config_file, _root_).replace("$", "$$")


__all__ = ["documented_keys", "options_help", "help_resolver"]
