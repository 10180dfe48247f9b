"""`python scripts/data/download_styles.py [NAME ...] [--out DIR]`: download the public-domain
style paintings of the presets (the style registry's sources, fastnst.styles) from Wikimedia
Commons.

Files go to <data>/styles/<name>.jpg, where <data> is $FASTNST_DATA if set, else the repo's
data/ folder (the same place the style configs look). Existing files are kept. The modern
presets (la_muse, candy, mosaic, feathers, rain_princess) are not public domain: the script
says where to put your own copy. Exit codes: 0 done, 1 a requested preset still has no file
(not public domain), 2 a download failed (offline, server error).
"""

from __future__ import annotations

import io
import os
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from fastnst.config import data_dir
from fastnst.styles import STYLES, public_domain_styles

# name -> URLs tried in order (the style registry's sources: a 1280 px rendering, then the original)
PUBLIC_DOMAIN = {name: list(STYLES[name].sources) for name in public_domain_styles()}
NOT_PUBLIC_DOMAIN = tuple(name for name, style in STYLES.items() if not style.public_domain)
USER_AGENT = "fastnst-download-styles/0.1 (Python urllib)"
TIMEOUT_S = 60


def default_out_dir() -> Path:
    return data_dir() / "styles"


class DownloadError(Exception):
    """One line: which painting, which URL, why."""


def fetch(urls: list[str]) -> bytes:
    """The first URL that answers with an image; DownloadError (last reason) if none does."""
    reason = "no URL"
    for url in urls:
        try:
            request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
                data = response.read()
        except urllib.error.HTTPError as e:
            reason = f"HTTP {e.code} from {url}"
            continue  # try the next rendering of the same painting
        except (urllib.error.URLError, OSError) as e:
            # no network: the other URLs are on the same host, stop here
            why = getattr(e, "reason", e)
            raise DownloadError(f"cannot reach {url} ({' '.join(str(why).split())})") from None
        if _is_image(data):
            return data
        reason = f"{url} did not return an image"
    raise DownloadError(reason)


def _is_image(data: bytes) -> bool:
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as img:
            img.verify()
        return True
    except ImportError:  # without Pillow, check the JPEG/PNG magic bytes
        return data[:3] == b"\xff\xd8\xff" or data[:8] == b"\x89PNG\r\n\x1a\n"
    except Exception:
        return False


def write_atomic(data: bytes, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    from fastnst.preflight import ArgumentParser

    parser = ArgumentParser(
        description="Download the public-domain style paintings (Wikimedia Commons) into <data>/styles/<name>.jpg.",
        epilog=f"Not public domain, supply your own copy: {', '.join(NOT_PUBLIC_DOMAIN)}. "
        "Exit codes: 0 done, 1 a requested preset has no file, 2 a download failed.",
    )
    parser.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help=f"presets to fetch (default: all public-domain ones: {', '.join(PUBLIC_DOMAIN)})",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="destination folder (default: $FASTNST_DATA/styles, else data/styles in the repo)",
    )
    args = parser.parse_args(argv)
    out = args.out if args.out is not None else default_out_dir()
    unknown = [n for n in args.names if n not in PUBLIC_DOMAIN and n not in NOT_PUBLIC_DOMAIN]
    if unknown:  # (argparse's `choices` rejects an empty nargs="*" list, so checked here)
        parser.error(
            f"unknown style {unknown[0]!r}; known: {', '.join([*PUBLIC_DOMAIN, *NOT_PUBLIC_DOMAIN])}"
        )
    names = list(dict.fromkeys(args.names)) or list(PUBLIC_DOMAIN)
    from fastnst.errors import FastNSTError, print_error
    from fastnst.preflight import ensure_writable

    try:
        ensure_writable(out, "--out", folder=True)  # before any download
    except FastNSTError as e:
        print_error(e)
        return 2

    missing = 0
    for name in names:
        path = out / f"{name}.jpg"
        if path.exists():
            print(f"{name}: {path} already exists, skipped")
            continue
        if name in NOT_PUBLIC_DOMAIN:
            print(
                f"{name}: not public domain, not downloaded; put your own copy at {path} "
                f"(or pass style.image=/path/to/painting.jpg)"
            )
            missing += 1
            continue
        try:
            write_atomic(fetch(PUBLIC_DOMAIN[name]), path)
        except DownloadError as e:
            print(
                f"download_styles.py: error: {name}: {e}; offline? copy the painting to {path} by hand",
                file=sys.stderr,
            )
            return 2
        except OSError as e:
            print(
                f"download_styles.py: error: {path}: cannot write ({e.strerror or e})",
                file=sys.stderr,
            )
            return 2
        print(f"{name}: saved {path}")
    return 1 if missing else 0
