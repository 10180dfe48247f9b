"""The docs' picture of the web app (docs/webapp.md, README): a bundled network on a photo, in headless chromium.

    python scripts/figures/app_screenshot.py [--style the_scream] [--photo chicago.jpg] [--output docs/images/app.png]

Starts `python app.py`, picks the bundled style, uploads the photo, waits for the result and saves
a screenshot of the page. Needs chromium + chromium-driver (apt) and selenium + gradio.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO / "src"), str(REPO / "tests"), str(REPO / "scripts" / "bench")]

from bench_app import default_photo, select_style  # noqa: E402

from app_helpers import (  # noqa: E402
    chromium,
    save_screenshot,
    start_app,
    stop_app,
    upload,
    wait_for,
)
from fastnst.apps.web import BUNDLED_SUFFIX  # noqa: E402
from fastnst.preflight import ArgumentParser, check_new_output  # noqa: E402


def main() -> None:
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--style", default="the_scream", help="a bundled style (stylize.py styles=list)"
    )
    parser.add_argument(
        "--photo", type=Path, default=None, help="default: $FASTNST_DATA/content/chicago.jpg"
    )
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "images" / "app.png")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    args = parser.parse_args()
    parser.check(check_new_output, args.output, args.overwrite, option="--overwrite")

    photo = args.photo or default_photo(Path(tempfile.mkdtemp(prefix="fastnst-screenshot-")))
    proc, url = start_app("device=cpu", timeout=900)
    driver = chromium(width=1280, height=760)
    try:
        driver.get(url)
        select_style(driver, f"{args.style}{BUNDLED_SUFFIX}")
        upload(driver, photo)
        wait_for(
            lambda: driver.execute_script(
                "const i = document.querySelector('#photo-result img'); return i && i.complete && i.naturalWidth"
            ),
            timeout=300,
            what="the stylized result",
        )
        save_screenshot(driver, args.output)
    finally:
        driver.quit()
        stop_app(proc)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
