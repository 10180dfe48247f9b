"""The docs' picture of TensorBoard's Images tab (docs/datasets.md): the probe photos of several
training runs side by side, in headless chromium.

    python scripts/figures/tensorboard_screenshot.py outputs/ [--tags 'probe/(chicago|imagenet_macaw)'] \\
        [--output docs/images/tensorboard_probes.png]

Starts `tensorboard --logdir LOGDIR` on a free local port, opens the Images tab with the tag
filter, waits until every image shown has loaded, and saves the page as a PNG (256 colours, to
stay small). Needs chromium + chromium-driver (apt) and selenium.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO / "src"), str(REPO / "tests")]

from app_helpers import chromium, save_screenshot, wait_for  # noqa: E402
from fastnst.preflight import ArgumentParser, check_new_output  # noqa: E402

# the images shown, when they have all loaded
LOADED = """
const found = [];
const walk = (root) => {
  for (const el of root.querySelectorAll('*')) {
    if (el.tagName === 'IMG') found.push(el);
    if (el.shadowRoot) walk(el.shadowRoot);
  }
};
walk(document);
const shown = found.filter((i) => i.getBoundingClientRect().width > 0 && i.src);
return shown.length && shown.every((i) => i.complete && i.naturalWidth) ? shown.length : 0;
"""


# type the tag filter into the Images tab's filter box (inside the dashboard's shadow DOM)
FILTER = """
const walk = (root) => {
  for (const el of root.querySelectorAll('*')) {
    if (el.tagName === 'PAPER-INPUT' && (el.getAttribute('label') || '').startsWith('Filter tags')) {
      return el;
    }
    if (el.shadowRoot) { const found = walk(el.shadowRoot); if (found) return found; }
  }
  return null;
};
const box = walk(document);
if (!box) return false;
box.value = arguments[0];
return true;
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_tensorboard(logdir: Path, port: int) -> subprocess.Popen:
    tensorboard = Path(sys.executable).with_name("tensorboard")
    proc = subprocess.Popen(
        [str(tensorboard), "--logdir", str(logdir), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def runs_listed():
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/data/runs", timeout=5) as r:
                return r.read() not in (b"", b"[]")
        except OSError:
            return False

    wait_for(runs_listed, timeout=180, interval=1.0, what="tensorboard to list the runs")
    return proc


def main() -> None:
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "logdir", type=Path, help="the folder holding the runs (tensorboard --logdir)"
    )
    parser.add_argument(
        "--tags",
        default="probe/(chicago|imagenet_macaw|anime_283)$",
        help="TensorBoard's tag filter (a regular expression)",
    )
    parser.add_argument(
        "--output", type=Path, default=REPO / "docs" / "images" / "tensorboard_probes.png"
    )
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=1580)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    args = parser.parse_args()
    parser.check(check_new_output, args.output, args.overwrite, option="--overwrite")
    if not args.logdir.is_dir():
        parser.error(f"{args.logdir}: not a folder")

    port = free_port()
    proc = start_tensorboard(args.logdir, port)
    driver = chromium(width=args.width, height=args.height)
    try:
        driver.get(f"http://127.0.0.1:{port}/#images")
        wait_for(lambda: driver.execute_script(LOADED), timeout=120, what="the images")
        wait_for(lambda: driver.execute_script(FILTER, args.tags), timeout=30, what="the filter")
        time.sleep(2)
        wait_for(lambda: driver.execute_script(LOADED), timeout=120, what="the filtered images")
        time.sleep(2)  # the cards' layout settles after the images load
        save_screenshot(driver, args.output)
    finally:
        driver.quit()
        proc.terminate()
        proc.wait(timeout=30)
    print(f"wrote {args.output} ({args.output.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
