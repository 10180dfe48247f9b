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
from fastnst.formats import load_exported
from fastnst.styles import aliases, canonical_name

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
    """The meta dict of a bundled file (recipe, quality), read by fastnst.formats (safely)."""
    return load_exported(path)[1]


def network_styles(path: Path) -> list[str]:
    """The styles inside a bundled multi-style network ([] for a single-style one)."""
    return list(load_exported(path)[0].styles or [])


def _quality_line(quality: dict) -> str:
    parts = []
    if "total_vs_gatys" in quality:
        parts.append(
            f"total/Gatys-{quality.get('gatys_iterations', '?')} {quality['total_vs_gatys']:.2f}"
        )
    if "edge_ssim" in quality:
        parts.append(f"edge SSIM {quality['edge_ssim']:.2f}")
    judge = quality.get("judge")
    if (
        judge and "style_swd" in judge
    ):  # the stroke-aware measure (fastnst.judge); the Gram loss's ratio is blind to strokes
        parts.append(
            f"style judge on {judge['judged'].split(' (')[0]}: {judge['style_swd']:.3f}, Johnson 2016 "
            f"{judge['johnson_style_swd']:.3f} (lower = closer to the painting)"
        )
    elif judge:  # a multi-style network: {style: judge numbers}
        first = next(iter(judge.values()))
        parts.append(
            f"style judge on {first['judged'].split(' (')[0]}, ours / Johnson 2016 (lower = closer): "
            + ", ".join(
                f"{s} {q['style_swd']:.3f} / {q['johnson_style_swd']:.3f}" for s, q in judge.items()
            )
        )
    ref = quality.get("reference")
    if ref:
        parts.append(f"content vs Johnson 2016 on chicago {ref['content_ratio']:.2f}x")
    return "; ".join(parts) or "not measured"


def listing() -> str:
    """What `stylize.py styles=list` prints: one block per bundled network."""
    styles = bundled_styles()
    if not styles:
        return "no bundled networks"
    lines = []
    for name, path in styles.items():
        net, meta = load_exported(path)
        recipe = meta.get("recipe", {})
        status = meta.get("status", "")
        lines.append(
            f"{name}{f'  [{status}]' if status else ''}  ({path.stat().st_size / 2**20:.1f} MB)"
        )
        inside = list(net.styles or [])
        if inside:
            lines.append(
                f"  styles:  {', '.join(inside)} (model={name} style=<one> or mix='{{<a>: 0.5, <b>: 0.5}}')"
            )
        lines.append(f"  recipe:  {recipe.get('summary', 'unknown')}")
        lines.append(f"  quality: {_quality_line(meta.get('quality', {}))}")
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
