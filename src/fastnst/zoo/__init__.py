"""Trained networks that ship with fastnst: `<style>.pt` files beside this module.

Each file is an exported transformer (`fastnst.formats.save_exported`, fp16 weights) whose
meta says how it was trained (`recipe`) and how good it is (`quality`), as written by
`scripts/zoo/bundle_network.py`. `Stylizer.load("the_scream")` and `stylize.py style=the_scream`
use them when no `model=` is given; `stylize.py styles=list` prints this listing.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from fastnst.errors import FastNSTError
from fastnst.styles import aliases, canonical_name
from fastnst.zoo.meta import quality_line, read_meta

ZOO_DIR = Path(__file__).resolve().parent


def bundled_styles() -> dict[str, Path]:
    """{style name: network file} of every bundled network, sorted by name."""
    return {p.stem: p for p in sorted(ZOO_DIR.glob("*.pt"))}


def is_bundled(name: str) -> bool:
    return canonical_name(str(name)) in bundled_styles()


def bundled_network(name: str) -> Path:
    """The network file of a bundled style; one-line error listing what exists otherwise."""
    styles = bundled_styles()
    path = styles.get(canonical_name(str(name)))
    if path is None:
        known = ", ".join(styles) or "none"
        hint = close_style_name(str(name))
        if hint:
            raise FastNSTError(
                f"unknown style {name!r} (did you mean {hint!r}?); bundled networks: {known}"
            )
        raise FastNSTError(
            f"no bundled network for style {name!r} (bundled: {known}); train one with "
            f"`python train.py experiment=zoo style={name}` and pass model=<run dir>"
        )
    return path


def close_style_name(name: str) -> str | None:
    """The bundled style (or alias) a misspelt name most likely meant, else None."""
    hints = difflib.get_close_matches(name, [*bundled_styles(), *aliases()], n=1)
    return hints[0] if hints else None


def resolve_model(model) -> Path:
    """A model argument as a path: an existing file or folder first (relative to the launch
    directory), else the bundled network of that style name (`the_scream`, `scream`). A bare
    name close to a bundled style's (`the_screem`) is an unknown style, with the suggestion."""
    path = Path(str(model)).expanduser()
    if path.exists():
        return path.resolve()
    if is_bundled(str(model)) or (
        path.name == str(model) and not path.suffix and close_style_name(str(model))
    ):
        return bundled_network(str(model))
    return path.resolve()


def network_meta(path: Path) -> dict:
    """The meta dict of a bundled file (recipe, quality; layout: fastnst.zoo.meta)."""
    return read_meta(path)[0]


def network_styles(path: Path) -> list[str]:
    """The styles inside a bundled multi-style network ([] for a single-style one)."""
    return read_meta(path)[1]


def listing() -> str:
    """What `stylize.py styles=list` prints: one block per bundled network."""
    styles = bundled_styles()
    if not styles:
        return "no bundled networks"
    lines = []
    for name, path in styles.items():
        meta, inside = read_meta(path)
        recipe = meta.get("recipe", {})
        status = meta.get("status", "")
        lines.append(
            f"{name}{f'  [{status}]' if status else ''}  ({path.stat().st_size / 2**20:.1f} MB)"
        )
        if inside:
            own = meta.get("stroke_scales") or {}  # each style's own stroke scale, where set
            shown = [f"{s} (stroke scale {own[s]:g})" if s in own else s for s in inside]
            lines.append(
                f"  styles:  {', '.join(shown)} (model={name} style=<one> or mix='{{<a>: 0.5, <b>: 0.5}}')"
            )
        lines.append(f"  recipe:  {recipe.get('summary', 'unknown')}")
        lines.append(f"  quality: {quality_line(meta.get('quality', {}))}")
    other_names = ", ".join(f"{a} = {n}" for a, n in aliases().items() if n in styles)
    if other_names:
        lines.append(f"aliases: {other_names}")
    return "\n".join(lines)


__all__ = [
    "ZOO_DIR",
    "bundled_styles",
    "bundled_network",
    "is_bundled",
    "resolve_model",
    "network_meta",
    "listing",
]
