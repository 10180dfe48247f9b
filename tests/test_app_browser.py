"""The web app in a real headless browser (Debian's chromium driven by Selenium): upload a
photo, get it stylized, upload a broken file and read the message, stream the fake camera.

Skipped only when chromium/chromedriver/selenium are missing and FASTNST_REQUIRE_BROWSER is
unset; `.ci/run` installs chromium and sets FASTNST_REQUIRE_BROWSER=1, so CI runs them.
Screenshots go to $FASTNST_SCREENSHOTS when set (else the test's tmp folder)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.app_helpers import (
    bad_uploads,
    browser_available,
    chromium,
    fetch_image,
    require_gradio,
    result_src,
    shown_frames,
    start_app,
    start_webcam,
    status_text,
    stop_app,
    tiny_models,
    upload,
    wait_for,
    webcam_input_size,
)

pytestmark = pytest.mark.browser

if not browser_available():
    if os.environ.get("FASTNST_REQUIRE_BROWSER"):
        pytest.fail(
            "FASTNST_REQUIRE_BROWSER is set but chromium, chromedriver or selenium is missing "
            "(apt-get install chromium chromium-driver; pip install -e '.[dev,app]')",
            pytrace=False,
        )
    pytest.skip(
        "no chromium/chromedriver/selenium (set FASTNST_REQUIRE_BROWSER=1 to fail instead)",
        allow_module_level=True,
    )
require_gradio()

from fastnst.stylize import Stylizer  # noqa: E402


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return tiny_models(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def app_url(models):
    proc, url = start_app(f"models={models}", "device=cpu", "webcam_model=tiny_a.pt")
    yield url
    log = stop_app(proc)
    assert "Traceback" not in log, log  # no request crashed the server's handlers


@pytest.fixture(scope="module")
def browser():
    driver = chromium()
    yield driver
    driver.quit()


@pytest.fixture
def page(browser, app_url):
    browser.get(app_url)
    return browser


def screenshot(driver, tmp_path: Path, name: str) -> Path:
    folder = Path(os.environ.get("FASTNST_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    assert driver.save_screenshot(str(path))
    assert path.stat().st_size > 1000
    return path


def stylize_in_page(page, photo: Path, expected_size: tuple[int, int]) -> Image.Image:
    """Upload `photo` in the Photo tab; the stylized result the page shows (full size)."""
    upload(page, photo)
    try:
        src = wait_for(lambda: result_src(page), timeout=90, what="the stylized image")
    except TimeoutError as e:  # say what the page showed instead: still working, an error, nothing
        raise TimeoutError(f"{e}; the page's status line: {status_text(page)!r}") from None
    assert page.execute_script(
        "const i = document.querySelector('#photo-result img'); return [i.naturalWidth, i.naturalHeight]"
    ) == list(expected_size)
    result = fetch_image(src).convert("RGB")
    assert result.size == expected_size
    original = Image.open(photo).convert("RGB").resize(expected_size)
    assert (
        np.abs(np.asarray(result, float) - np.asarray(original, float)).mean() > 5
    )  # stylized, not the photo
    return result


def test_browser_photo_is_stylized_and_a_broken_upload_shows_one_line(
    page, tmp_path, image_factory
):
    photo = image_factory("street.png", size=(640, 480))
    stylize_in_page(page, photo, (512, 384))
    assert status_text(page).startswith("512x384 px")
    screenshot(page, tmp_path, "app_photo.png")

    broken = bad_uploads(tmp_path / "bad")["truncated"]
    upload(page, broken)
    message = wait_for(
        lambda: (t := status_text(page)).startswith("error") and t,
        timeout=60,
        what="the error message",
    )
    assert (
        message.startswith("error: truncated.jpg: truncated or corrupt image")
        and "\n" not in message
    )
    assert "Traceback" not in page.page_source
    wait_for(lambda: result_src(page) is None, timeout=10, what="the old result to be cleared")
    screenshot(page, tmp_path, "app_broken_upload.png")

    # the app keeps serving: the next photo comes back
    stylize_in_page(page, image_factory("next.png", size=(300, 200), seed=3), (512, 341))


@pytest.mark.data
def test_browser_chicago_is_stylized(page, data_dir, tmp_path):
    photo = data_dir / "content" / "chicago.jpg"
    width, height = Image.open(photo).size
    expected = (512, round(height * 512 / width))
    stylize_in_page(page, photo, expected)
    screenshot(page, tmp_path, "app_chicago.png")


def test_browser_webcam_streams_stylized_frames(page, tmp_path, models):
    start_webcam(page)
    wait_for(lambda: len(shown_frames(page)) >= 5, timeout=60, what="5 stylized webcam frames")
    assert webcam_input_size(page) == (320, 240)
    camera, shown = page.execute_script(CAMERA_AND_SHOWN)
    camera, shown = fetch_image(camera).convert("RGB"), fetch_image(shown).convert("RGB")
    assert shown.size == (320, 240)
    # the frame shown is the network's output for a camera frame (the fake camera's pattern moves a
    # little between the two, and the frame travels as a JPEG), not the camera frame itself
    expected = Stylizer.load(models / "tiny_a.pt", device="cpu")(camera, size=320)
    to_the_network = np.abs(_pixels(shown) - _pixels(expected)).mean()
    to_the_camera = np.abs(_pixels(shown) - _pixels(camera)).mean()
    assert to_the_network < to_the_camera / 3, (to_the_network, to_the_camera)
    screenshot(page, tmp_path, "app_webcam.png")


# the camera's current frame (as a PNG data: URL) and the stylized frame the page shows
CAMERA_AND_SHOWN = """
    const v = document.querySelector('#webcam-input video');
    const c = document.createElement('canvas');
    c.width = v.videoWidth; c.height = v.videoHeight;
    c.getContext('2d').drawImage(v, 0, 0);
    return [c.toDataURL('image/png'), document.querySelector('#webcam-output img').src];"""


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.float64)
