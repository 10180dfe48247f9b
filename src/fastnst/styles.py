"""The style registry: what fastnst knows about each named painting, in one place.

Per style: its painting file (`<data_dir>/styles/<name>.jpg`, else the copy bundled in
`fastnst/paintings/` for a public-domain one), whether it is public domain (then it is bundled
and `scripts/data/download_styles.py` fetches it from `sources`), the name of Johnson et al.
2016's published output (`<data_dir>/reference/johnson2016/<photo>_<published>.jpg`), and the
size the style judge takes the painting at (`judge_size`).

The training preset of a style stays in `conf/style/<name>.yaml` (`preset_file`): its image,
size, beta_scale and stroke_scale are read there, never copied here. Another name of a style
(an alias, e.g. `style=scream`) is a preset whose whole content is the other style's preset in
its defaults list: `aliases()` reads them from conf/style/, so each alias is written once, in the
file that makes it work for `train.py style=<alias>`.

    from fastnst.styles import STYLES, canonical_name, judge_size, published_output
    canonical_name("scream")               # the_scream
    published_output(data, "the_scream")   # <data>/reference/johnson2016/chicago_scream.jpg

The painting itself is found by fastnst.bundled.painting_path (the user's copy, else the bundled).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

# the painting's longer side (px) the judge compares against when the registry names none
DEFAULT_JUDGE_SIZE = 512
_COMMONS = "https://upload.wikimedia.org/wikipedia/commons"
_UDNIE = (
    "Francis_Picabia%2C_1913%2C_Udnie_%28Young_American_Girl%2C_The_Dance%29%2C_oil_on_canvas%2C_"
    "290_x_300_cm%2C_Mus%C3%A9e_National_d%E2%80%99Art_Moderne%2C_Centre_Georges_Pompidou%2C_Paris..jpg"
)


@dataclass(frozen=True)
class Style:
    """One named painting. `judge_size`: the painting's longer side (px) at which its motifs
    have the size a good network paints them (for Johnson et al. 2016's styles, the style image
    size their released models were trained with). `published`: the style part of the file
    names of Johnson et al. 2016's published outputs (None: none published). `sources`: URLs
    of a public-domain reproduction, tried in order (a 1280 px rendering, then the original)."""

    name: str
    title: str
    public_domain: bool
    judge_size: int = DEFAULT_JUDGE_SIZE
    published: str | None = None
    sources: tuple[str, ...] = ()

    @property
    def painting_file(self) -> str:
        return f"{self.name}.jpg"

    @property
    def preset_file(self) -> Path:
        """conf/style/<name>.yaml: the training preset (image, size, beta_scale, stroke_scale)."""
        return _style_conf_dir() / f"{self.name}.yaml"


STYLES: dict[str, Style] = {
    s.name: s
    for s in (
        Style(
            "starry_night",
            "Vincent van Gogh, The Starry Night (1889)",
            True,
            512,
            "starry_night",
            (
                f"{_COMMONS}/thumb/e/ea/Van_Gogh_-_Starry_Night_-_Google_Art_Project.jpg/"
                "1280px-Van_Gogh_-_Starry_Night_-_Google_Art_Project.jpg",
            ),
        ),
        Style(
            "the_scream",
            "Edvard Munch, The Scream (1893)",
            True,
            384,
            "scream",
            (
                f"{_COMMONS}/thumb/f/f4/The_Scream.jpg/1280px-The_Scream.jpg",
                f"{_COMMONS}/f/f4/The_Scream.jpg",
            ),
        ),
        Style(
            "wave",
            "Katsushika Hokusai, The Great Wave off Kanagawa (c. 1831)",
            True,
            512,
            "wave",
            (
                f"{_COMMONS}/thumb/0/0a/The_Great_Wave_off_Kanagawa.jpg/"
                "1280px-The_Great_Wave_off_Kanagawa.jpg",
                f"{_COMMONS}/0/0a/The_Great_Wave_off_Kanagawa.jpg",
            ),
        ),
        Style(
            "composition_vii",
            "Wassily Kandinsky, Composition VII (1913)",
            True,
            512,
            "composition_vii",
            (
                f"{_COMMONS}/thumb/b/b4/Vassily_Kandinsky%2C_1913_-_Composition_7.jpg/"
                "1280px-Vassily_Kandinsky%2C_1913_-_Composition_7.jpg",
                f"{_COMMONS}/b/b4/Vassily_Kandinsky%2C_1913_-_Composition_7.jpg",
            ),
        ),
        Style(
            "udnie",
            "Francis Picabia, Udnie (1913)",
            True,
            256,
            "udnie",
            (f"{_COMMONS}/thumb/8/82/{_UDNIE}/1280px-{_UDNIE}", f"{_COMMONS}/8/82/{_UDNIE}"),
        ),
        Style(
            "shipwreck_of_the_minotaur",
            "J. M. W. Turner, The Shipwreck of the Minotaur (c. 1810)",
            True,
            sources=(f"{_COMMONS}/2/2e/Shipwreck_turner.jpg",),
        ),
        Style("candy", "candy (PyTorch examples' modern artwork)", False, 384, "candy"),
        Style("mosaic", "mosaic (PyTorch examples' modern artwork)", False, 512, "mosaic"),
        Style("la_muse", "Pablo Picasso, La Muse (1935)", False, 512, "la_muse"),
        Style("feathers", "feathers (modern artwork)", False, 180, "feathers"),
        Style("rain_princess", "Leonid Afremov, Rain Princess (modern artwork)", False),
    )
}


def _style_conf_dir() -> Path:
    # the package's conf/style (fastnst.config.CONFIG_DIR / "style"; config imports this module)
    return Path(str(resources.files("fastnst").joinpath("conf", "style")))


@functools.cache
def aliases() -> dict[str, str]:
    """{alias: style} for every preset of conf/style/ that is only another preset's defaults
    (conf/style/scream.yaml: `defaults: [the_scream, _self_]`)."""
    from omegaconf import OmegaConf

    found = {}
    for path in sorted(_style_conf_dir().glob("*.yaml")):
        preset = OmegaConf.load(path)
        if list(preset) != ["defaults"]:  # a preset with its own keys
            continue
        defaults = [d for d in preset.defaults if d != "_self_"]
        if len(defaults) == 1 and isinstance(defaults[0], str):
            found[path.stem] = defaults[0]
    return found


def canonical_name(name) -> str:
    """The style an alias names (scream -> the_scream); any other name as given."""
    return aliases().get(str(name), str(name))


def get_style(name) -> Style | None:
    """The registry entry of a style name or alias, else None (custom, anime, multi, a file)."""
    return STYLES.get(canonical_name(name))


def public_domain_styles() -> list[str]:
    """The public-domain styles (bundled paintings, downloadable), in registry order."""
    return [s.name for s in STYLES.values() if s.public_domain]


def johnson_styles() -> list[str]:
    """The public-domain styles with a published Johnson et al. 2016 output: the styles the
    bundled networks are judged against (judge_table.py, zoo_sheet.py)."""
    return [s.name for s in STYLES.values() if s.public_domain and s.published]


def judge_size(name) -> int:
    """The painting's longer side (px) the style judge compares against."""
    style = get_style(name)
    return style.judge_size if style else DEFAULT_JUDGE_SIZE


def published_output(data_dir, name, photo: str = "chicago") -> Path | None:
    """Where Johnson et al. 2016's published output of style `name` on `photo` lies
    (`<data_dir>/reference/johnson2016/<photo>_<published>.jpg`; it may not exist), or None when
    the registry knows of no published output for that style. The one place that names them."""
    style = get_style(name)
    if style is None or style.published is None:
        return None
    return Path(data_dir) / "reference" / "johnson2016" / f"{photo}_{style.published}.jpg"


__all__ = [
    "DEFAULT_JUDGE_SIZE",
    "STYLES",
    "Style",
    "aliases",
    "canonical_name",
    "get_style",
    "johnson_styles",
    "judge_size",
    "public_domain_styles",
    "published_output",
]
