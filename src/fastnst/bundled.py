"""Files shipped inside the package: the public-domain paintings of the style presets, and the
one painting lookup.

A preset's painting is looked up in the user's data folder first (`<data_dir>/styles/<name>.jpg`,
so a user's own copy always wins), then in `fastnst/paintings/`. Which paintings are public
domain (and so bundled) is the style registry's (fastnst.styles); the modern presets (la_muse,
candy, mosaic, feathers, rain_princess) are not and are never bundled.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastnst.styles import get_style


def bundled_painting(name: str) -> Path | None:
    """The packaged copy of a public-domain style's painting (an alias finds its style's), or
    None."""
    style = get_style(name)
    if style is None or not style.public_domain:
        return None
    path = Path(str(resources.files("fastnst").joinpath("paintings", style.painting_file)))
    return path if path.is_file() else None


def painting_path(data_dir, name: str) -> str:
    """The painting of style `name`: `<data_dir>/styles/<name>.jpg` when it exists, else the
    bundled copy when there is one, else the user path again (so the missing-file error names
    the file the user must provide). `data_dir`: the data folder (fastnst.config.data_dir())."""
    style = get_style(name)
    user = (
        Path(str(data_dir)).expanduser()
        / "styles"
        / (style.painting_file if style else f"{name}.jpg")
    )
    if user.exists():
        return str(user)
    bundled = bundled_painting(name)
    return str(bundled) if bundled is not None else str(user)
