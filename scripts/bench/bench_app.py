"""The web app's speed, measured in a real headless chromium (docs/benchmarks.md "Web app").

    python scripts/bench/bench_app.py [--webcam-model johnson_fast] [--photo-model johnson] [--seconds 10]

Starts `python app.py` with random-init networks of the given presets (conf/model/*.yaml: a
trained network of the same architecture runs at the same speed), then in the browser:
  - Webcam tab, Chromium's fake camera at 320x240: stylized frames the page shows per second;
  - Photo tab: one 512 px request (click on Stylize -> the result shown in the page), median of
    --repeats, against the bare `Stylizer` call on the same decoded photo in this process.
Needs chromium + chromium-driver (apt) and selenium + gradio (make install).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # what the app's entry point sets (fastnst.cli)

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO / "src"), str(REPO / "tests")]

from app_helpers import (  # noqa: E402
    chromium,
    open_tab,
    shown_frames,
    start_app,
    start_webcam,
    stop_app,
    upload,
    wait_for,
)


def preset_network(name: str, folder: Path) -> Path:
    """A random-init network of conf/model/<name>.yaml, exported to <folder>/<name>.pt."""
    import hydra
    from omegaconf import OmegaConf

    from fastnst.artifacts import save_exported
    from fastnst.config import CONFIG_DIR

    net = hydra.utils.instantiate(OmegaConf.load(CONFIG_DIR / "model" / f"{name}.yaml"))
    return save_exported(folder / f"{name}.pt", net)


def default_photo(folder: Path) -> Path:
    from fastnst.config import data_dir

    photo = data_dir() / "content" / "chicago.jpg"
    if photo.is_file():
        return photo
    import numpy as np
    from PIL import Image

    yy, xx = np.mgrid[0:474, 0:712] / 712
    arr = np.stack([0.5 + 0.5 * np.sin(a * xx + b * yy) for a, b in ((9, 2), (3, 7), (5, 5))], -1)
    path = folder / "photo.png"
    Image.fromarray((arr * 255).astype("uint8")).save(path)
    return path


CLICK_AND_TIME = """
// done when the result's progress indicator has come and gone and its image is loaded. Gradio
// names cached files by their content, so an identical result keeps the same src: watching the
// src alone would wait forever on a deterministic network.
const done = arguments[arguments.length - 1];
const result = () => document.querySelector('#photo-result img');
const pending = () => document.querySelector('#photo-result .progress-text') !== null;
const before = (result() || {}).src;
let seenPending = false;
const t0 = performance.now();
document.querySelector('#photo-run').click();
const poll = () => {
    const img = result();
    seenPending = seenPending || pending();
    const changed = img && img.src && img.src !== before;
    if ((seenPending || changed) && !pending() && img && img.complete && img.naturalWidth) {
        done([performance.now() - t0, img.naturalWidth, img.naturalHeight]);
    } else { requestAnimationFrame(poll); }
};
requestAnimationFrame(poll);
"""


def photo_request_times(driver, photo: Path, repeats: int) -> tuple[list[float], tuple[int, int]]:
    upload(driver, photo)  # the first request (loads the network); then time clicks on Stylize
    wait_for(
        lambda: driver.execute_script(
            "const i = document.querySelector('#photo-result img'); return i && i.complete && i.naturalWidth"
        ),
        timeout=180,
        what="the first result",
    )
    driver.set_script_timeout(180)
    times, size = [], None
    for _ in range(repeats):
        elapsed_ms, w, h = driver.execute_async_script(CLICK_AND_TIME)
        times.append(elapsed_ms / 1000)
        size = (w, h)
    return times, size


def bare_stylizer_times(model: Path, photo: Path, repeats: int) -> list[float]:
    from fastnst.images import open_rgb
    from fastnst.stylize import Stylizer

    stylizer = Stylizer.load(model, device="cpu")
    image = open_rgb(photo)
    stylizer(image, size=512)  # warm-up, as the app's first request
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        stylizer(image, size=512)
        times.append(time.perf_counter() - start)
    return times


def webcam_fps(driver, seconds: float, warmup: float = 3.0) -> float:
    open_tab(driver, "Webcam")
    start_webcam(driver)
    wait_for(lambda: len(shown_frames(driver)) >= 2, timeout=120, what="the first webcam frames")
    time.sleep(warmup)
    t0 = driver.execute_script("return performance.now()")
    time.sleep(seconds)
    t1 = driver.execute_script("return performance.now()")
    frames = [t for t in shown_frames(driver) if t0 <= t <= t1]
    return len(frames) / ((t1 - t0) / 1000)


def main() -> None:
    from fastnst.preflight import ArgumentParser

    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--webcam-model", default="johnson_fast", help="conf/model preset for the webcam tab"
    )
    parser.add_argument(
        "--photo-model", default="johnson", help="conf/model preset for the 512 px photo request"
    )
    parser.add_argument(
        "--photo", type=Path, default=None, help="default: $FASTNST_DATA/content/chicago.jpg"
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="webcam measuring window")
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="fastnst-bench-app-"))
    models = folder / "models"
    models.mkdir()
    webcam_model = preset_network(args.webcam_model, models)
    photo_model = (
        preset_network(args.photo_model, models)
        if args.photo_model != args.webcam_model
        else webcam_model
    )
    photo = args.photo or default_photo(folder)

    # the bare call is timed before and after the app runs (pooled): this machine's speed drifts
    bare_times = bare_stylizer_times(photo_model, photo, args.repeats)
    proc, url = start_app(
        f"models={models}", "device=cpu", f"webcam_model={webcam_model.name}", timeout=900
    )
    driver = chromium()
    try:
        driver.get(url)
        select_style(driver, photo_model.name)
        request_times, size = photo_request_times(driver, photo, args.repeats)
        fps = webcam_fps(driver, args.seconds)
    finally:
        driver.quit()
        stop_app(proc)
    bare_times += bare_stylizer_times(photo_model, photo, args.repeats)

    request, bare = statistics.median(request_times), statistics.median(bare_times)
    load = os.getloadavg()
    print(
        f"fastnst web app in headless chromium; {os.cpu_count()} CPUs, load average "
        f"{load[0]:.1f} {load[1]:.1f} {load[2]:.1f}; photo {photo.name} -> {size[0]}x{size[1]}"
    )
    print("| measure | value | target |")
    print("|---|---|---|")
    print(
        f"| webcam tab, stylized frames/s shown ({args.webcam_model}, 320x240) | {fps:.1f} | >= 8 |"
    )
    print(
        f"| photo request, 512 px ({args.photo_model}; click -> result shown), median of {args.repeats} "
        f"| {request:.3f} s | |"
    )
    print(
        f"| bare Stylizer call, same photo and network, median of 2x{args.repeats} (before and after) | {bare:.3f} s | |"
    )
    print(f"| request / bare | {request / bare:.2f}x | <= 1.3x |")


def select_style(driver, label: str) -> None:
    """Pick `label` in the Photo tab's Style dropdown (type it, then Enter)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    field = wait_for(
        lambda: driver.find_elements(By.CSS_SELECTOR, "#photo-style input"),
        timeout=180,
        what="the style field",
    )[0]
    if field.get_attribute("value") == label:
        return
    field.click()
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(label)
    field.send_keys(Keys.ENTER)  # the first option matching what was typed
    wait_for(lambda: field.get_attribute("value") == label, timeout=120, what=f"the style {label}")


if __name__ == "__main__":
    main()
