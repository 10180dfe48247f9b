"""Shared by the web app's tests: tiny networks, bad uploads, and the app as a subprocess."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import time
import urllib.request
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fastnst.apps.web import use_fastnst_temp_dir

REPO = Path(__file__).resolve().parents[1]
# Gradio and its client keep uploads and downloads under GRADIO_TEMP_DIR, read when they are
# imported: the fastnst cache dir's gradio/ folder, as the app itself uses, not /tmp/gradio
use_fastnst_temp_dir()


def require_gradio() -> None:
    """Skip the calling test module when gradio (the app extra) is missing; fail instead when
    FASTNST_REQUIRE_APP is set (CI), so a broken install cannot silently skip the web tests."""
    try:
        import gradio  # noqa: F401
    except ImportError as e:
        if os.environ.get("FASTNST_REQUIRE_APP"):
            pytest.fail(
                f"FASTNST_REQUIRE_APP is set but gradio cannot be imported ({e}); "
                "pip install -e '.[app]'",
                pytrace=False,
            )
        pytest.skip(
            "gradio is not installed (pip install -e '.[app]'; FASTNST_REQUIRE_APP=1 fails instead)",
            allow_module_level=True,
        )


def tiny_models(folder: Path, names=("tiny_a", "tiny_b")) -> Path:
    """A models folder of random-init networks, small enough for a test: one loose .pt and one
    run directory (model.pt inside), so both kinds are offered."""
    import torch

    from fastnst.artifacts import save_exported
    from fastnst.transformer import TransformerNet

    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        torch.manual_seed(i)
        net = TransformerNet(channels=[8, 16, 16], num_residual=1)
        path = folder / f"{name}.pt" if i == 0 else folder / name / "model.pt"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_exported(path, net)
    return folder


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bad_uploads(folder: Path) -> dict[str, Path]:
    """{what: file} of the uploads the app must refuse with a one-line message."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    files["not_an_image"] = folder / "notes.png"
    files["not_an_image"].write_text("this is not a picture\n")
    photo = folder / "whole.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (96, 128, 3), dtype=np.uint8)).save(
        photo
    )
    files["truncated"] = folder / "truncated.jpg"
    files["truncated"].write_bytes(photo.read_bytes()[: photo.stat().st_size // 2])
    # a 30000 x 30000 px PNG header in a few bytes: decoding it would need 2.7 GB
    ihdr = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)
    files["bomb"] = folder / "bomb.png"
    files["bomb"].write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(b"\0" * 1000))
        + _png_chunk(b"IEND", b"")
    )
    files["panorama"] = folder / "panorama.png"
    Image.new("L", (20000, 50), 128).save(files["panorama"])
    return files


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(*overrides: str, timeout: float = 300.0):
    """`python app.py port=<free> <overrides>` in a subprocess; returns (process, url) once the
    page answers. The caller stops it (stop_app)."""
    port = free_port()
    env = dict(
        os.environ,
        PYTHONPATH=str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""),
        GRADIO_ANALYTICS_ENABLED="False",
    )
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "app.py"), f"port={port}", *overrides],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the app exited with {proc.returncode}: {proc.stdout.read()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.3)
    stop_app(proc)
    raise RuntimeError(f"the app did not answer on {url} within {timeout:.0f} s")


def stop_app(proc) -> str:
    proc.terminate()
    try:
        out, _ = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out or ""


# -- the page in a headless chromium (Selenium + Debian's chromium-driver) -------------------

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def browser_available() -> bool:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return False
    return Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()


def chromium(width: int = 1280, height: int = 900):
    """Headless chromium whose camera is Chromium's fake device (a moving test pattern)."""
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        f"--window-size={width},{height}",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=webdriver.ChromeService(CHROMEDRIVER), options=options)
    driver.implicitly_wait(0)
    return driver


def save_screenshot(driver, output: Path) -> None:
    """The browser's page as a PNG at `output` (written atomically), in 256 colours: a third of
    the bytes, no visible loss on a page of flat colours."""
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp.png")
    driver.save_screenshot(str(tmp))
    Image.open(tmp).convert("RGB").quantize(256, dither=Image.Dither.FLOYDSTEINBERG).save(
        tmp, optimize=True
    )
    os.replace(tmp, output)


def wait_for(condition, timeout: float = 60.0, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def open_tab(driver, name: str) -> None:
    from selenium.webdriver.common.by import By

    tab = wait_for(
        lambda: [
            t for t in driver.find_elements(By.CSS_SELECTOR, "button[role=tab]") if t.text == name
        ],
        what=f"the {name} tab",
    )[0]
    tab.click()


def result_src(driver, elem_id: str = "photo-result") -> str | None:
    return driver.execute_script(
        f"const i = document.querySelector('#{elem_id} img'); return i && i.complete && i.naturalWidth ? i.src : null"
    )


def upload(driver, path: Path, elem_id: str = "photo-input") -> None:
    from selenium.webdriver.common.by import By

    field = wait_for(
        lambda: driver.find_elements(By.CSS_SELECTOR, f"#{elem_id} input[type=file]"),
        what="the upload field",
    )[0]
    field.send_keys(str(path))


def status_text(driver, elem_id: str = "photo-status") -> str:
    return driver.execute_script(
        f"const e = document.getElementById('{elem_id}'); return e ? e.innerText : ''"
    ).strip()


def fetch_image(src: str) -> Image.Image:
    with urllib.request.urlopen(src, timeout=30) as r:
        image = Image.open(__import__("io").BytesIO(r.read()))
        image.load()
        return image


def start_webcam(driver) -> None:
    """Webcam tab: grant the (fake) camera, then start the stream."""
    from selenium.webdriver.common.by import By

    open_tab(driver, "Webcam")
    wait_for(
        lambda: driver.find_elements(
            By.CSS_SELECTOR, "#webcam-input div[title='grant webcam access'] button"
        ),
        what="the webcam access button",
    )[0].click()
    wait_for(
        lambda: driver.find_elements(
            By.CSS_SELECTOR, "#webcam-input button[aria-label='capture photo']"
        ),
        what="the record button",
    )[0].click()
    # count every new stylized frame the page shows, with its time (polled every animation frame)
    driver.execute_script("""
        window.__frames = []; let last = null;
        const poll = () => {
            const img = document.querySelector('#webcam-output img');
            if (img && img.src && img.src !== last) { last = img.src; window.__frames.push(performance.now()); }
            requestAnimationFrame(poll);
        };
        requestAnimationFrame(poll);""")


def shown_frames(driver) -> list[float]:
    """Times (ms) at which the page showed a new stylized webcam frame."""
    return driver.execute_script("return window.__frames || []")


def webcam_input_size(driver) -> tuple[int, int]:
    return tuple(
        driver.execute_script(
            "const v = document.querySelector('#webcam-input video'); return [v.videoWidth, v.videoHeight]"
        )
    )
