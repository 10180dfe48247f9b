"""Files shipped inside the package: the public-domain paintings of the style presets.

A preset's painting is looked up in the user's data folder first (`<data_dir>/styles/<name>.jpg`,
so a user's own copy always wins), then in `fastnst/paintings/`. The modern presets (la_muse,
candy, mosaic, feathers, rain_princess) are not public domain and are never bundled.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

PAINTINGS = (
    "starry_night",
    "the_scream",
    "wave",
    "composition_vii",
    "udnie",
    "shipwreck_of_the_minotaur",
)


def bundled_painting(name: str) -> Path | None:
    """The packaged copy of a public-domain preset's painting, or None."""
    if name not in PAINTINGS:
        return None
    path = Path(str(resources.files("fastnst").joinpath("paintings", f"{name}.jpg")))
    return path if path.is_file() else None


def painting_path(data_dir: str, name: str) -> str:
    """`<data_dir>/styles/<name>.jpg` when it exists, else the bundled copy when there is one,
    else the user path again (so the missing-file error names the file the user must provide)."""
    user = Path(str(data_dir)).expanduser() / "styles" / f"{name}.jpg"
    if user.exists():
        return str(user)
    bundled = bundled_painting(name)
    return str(bundled) if bundled is not None else str(user)
