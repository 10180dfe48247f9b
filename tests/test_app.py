"""The web app's handlers (no browser): networks offered and cached, photos, bad uploads, the
webcam frame path, Gatys with progress and cancel, concurrent requests through Gradio's API,
and the command line."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from PIL import Image, ImageChops

from tests.app_helpers import REPO, bad_uploads, require_gradio, tiny_models

require_gradio()

from fastnst.apps import web  # noqa: E402
from fastnst.apps.web import BUNDLED_SUFFIX, WebApp, find_models, model_catalog  # noqa: E402
from fastnst.stylize import Stylizer  # noqa: E402


@pytest.fixture
def models(tmp_path):
    return tiny_models(tmp_path / "models")


@pytest.fixture
def app(models, tmp_path):
    return WebApp(catalog=model_catalog(models), device="cpu", output_dir=tmp_path / "out")


def test_models_folder_offers_run_directories_and_model_files(models):
    (models / "notes.txt").write_text("not a model")
    found = find_models(models)
    assert found == {"tiny_b": models / "tiny_b", "tiny_a.pt": models / "tiny_a.pt"}


def test_missing_models_folder_is_a_one_line_error(tmp_path):
    with pytest.raises(web.FastNSTError, match="not found"):
        model_catalog(tmp_path / "nope")


def test_no_zoo_module_means_no_bundled_styles(monkeypatch):
    monkeypatch.setitem(sys.modules, "fastnst.zoo", None)  # import fails
    assert web.bundled_networks() == {}


def test_bundled_styles_come_first_in_the_catalog(monkeypatch, models):
    fake = type(sys)("fastnst.zoo")
    fake.bundled_styles = lambda: {"wave": models / "tiny_a.pt"}
    monkeypatch.setitem(sys.modules, "fastnst.zoo", fake)
    assert list(model_catalog(models))[0] == "wave (bundled)"


def test_photo_request_returns_full_size_stylized_png(app, image_factory):
    photo = image_factory("photo.png", size=(120, 80))
    result = app.stylize_photo(str(photo), "tiny_a.pt", 1.0, False, "96")
    out = Image.open(result.image)
    assert out.format == "PNG" and out.size == (96, 64)
    assert "96x64 px" in result.status
    bare = Stylizer.load(app.catalog["tiny_a.pt"], device="cpu")(
        Image.open(photo).convert("RGB"), size=96
    )
    assert (
        ImageChops.difference(out.convert("RGB"), bare).getbbox() is None
    )  # the Stylizer's result
    assert ImageChops.difference(
        out.convert("RGB"), Image.open(photo).convert("RGB").resize((96, 64))
    ).getbbox()


def test_photo_request_original_size_strength_and_keep_colours(app, image_factory):
    photo = image_factory("photo.png", size=(70, 50))
    image = Image.open(photo).convert("RGB")
    bare = Stylizer.load(app.catalog["tiny_b"], device="cpu")
    got = {}
    for strength, keep in ((0.6, True), (0.6, False), (0.0, True)):
        out = Image.open(
            app.stylize_photo(str(photo), "tiny_b", strength, keep, "original").image
        ).convert("RGB")
        expected = bare(image, size=None, strength=strength, preserve_color=keep)
        assert out.size == (70, 50)
        got[strength, keep] = np.asarray(out, dtype=np.float64)
        assert np.abs(got[strength, keep] - np.asarray(expected, dtype=np.float64)).max() <= 1, (
            strength,
            keep,
        )
    assert np.abs(got[0.6, True] - got[0.6, False]).mean() > 2  # keep_colours changed the result
    assert np.array_equal(
        got[0.0, True], np.asarray(image, dtype=np.float64)
    )  # strength 0: the photo


def test_empty_inputs_are_a_message_not_an_error(app, image_factory):
    assert app.stylize_photo(None, "tiny_a.pt").status == "Upload or paste a photo."
    photo = str(image_factory("photo.png"))
    for style in (None, ""):
        result = app.stylize_photo(photo, style)
        assert result.image is None
        assert (
            result.status == "error: no style to apply (start the app with models=<folder of runs>)"
        )
    for painting, content in ((None, photo), (photo, None), (None, None)):
        assert list(app.run_gatys(painting, content)) == [(None, "Upload a painting and a photo.")]
    assert app.stylize_frame(None, "tiny_a.pt") is None


@pytest.mark.parametrize("kind", ["not_an_image", "truncated", "bomb", "panorama"])
def test_bad_upload_is_a_one_line_message_and_the_app_keeps_serving(
    app, tmp_path, image_factory, kind
):
    bad = bad_uploads(tmp_path / "bad")[kind]
    result = app.stylize_photo(str(bad), "tiny_a.pt", 1.0, False, "512")
    assert result.image is None
    assert result.status.startswith("error: ") and "\n" not in result.status
    assert bad.name in result.status and str(bad.parent) not in result.status  # no server paths
    expected = {
        "not_an_image": "not an image",
        "truncated": "truncated",
        "bomb": "too large",
        "panorama": "20000x50 px",
    }[kind]
    assert expected in result.status
    good = app.stylize_photo(str(image_factory("ok.png")), "tiny_a.pt", 1.0, False, "64")
    assert good.image is not None


def test_internal_failure_is_one_line_and_the_next_request_works(
    app, image_factory, monkeypatch, capsys
):
    photo = str(image_factory("photo.png"))
    real = Stylizer.__call__
    monkeypatch.setattr(
        Stylizer,
        "__call__",
        lambda self, *a, **k: (_ for _ in ()).throw(RuntimeError("boom\nline 2")),
    )
    result = app.stylize_photo(photo, "tiny_a.pt", 1.0, False, "64")
    assert (
        result.image is None
        and result.status
        == "error: internal error (RuntimeError: boom line 2); the app keeps serving"
    )
    assert "Traceback" in capsys.readouterr().err  # the details go to the server's log
    monkeypatch.setattr(Stylizer, "__call__", real)
    assert app.stylize_photo(photo, "tiny_a.pt", 1.0, False, "64").image is not None


def test_networks_load_once(app, image_factory, monkeypatch):
    loads = []
    real_load = Stylizer.load.__func__
    monkeypatch.setattr(
        Stylizer,
        "load",
        classmethod(lambda cls, *a, **k: loads.append(a) or real_load(cls, *a, **k)),
    )
    photo = str(image_factory("photo.png"))
    for _ in range(3):
        assert app.stylize_photo(photo, "tiny_a.pt", 1.0, False, "64").image
    assert app.stylize_frame(np.zeros((24, 32, 3), np.uint8), "tiny_a.pt") is not None
    assert len(loads) == 1


def test_unknown_style_is_a_one_line_message(app, image_factory):
    result = app.stylize_photo(str(image_factory("photo.png")), "nope", 1.0, False, "64")
    assert result.status.startswith("error: unknown style 'nope'")


def test_webcam_frame_is_stylized_at_the_webcam_size(app):
    app.webcam_size = 64
    frame = np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    out = app.stylize_frame(frame, "tiny_a.pt")
    assert out.shape == (48, 64, 3) and out.dtype == np.uint8
    x = torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255
    expected = Stylizer.load(app.catalog["tiny_a.pt"], device="cpu").stylize_tensor(x, size=64)
    expected = expected[0].permute(1, 2, 0).numpy() * 255
    assert np.abs(out - expected).max() <= 1  # the network's output, not the frame
    resized = np.asarray(Image.fromarray(frame).resize((64, 48), Image.BILINEAR), dtype=np.float64)
    assert np.abs(out - resized).mean() > 5


def test_webcam_default_network_is_the_smallest_offered(models):
    from fastnst.artifacts import save_exported
    from fastnst.transformer import TransformerNet

    save_exported(
        models / "tiny_b" / "model.pt", TransformerNet(channels=[16, 32, 32], num_residual=2)
    )
    app = WebApp(catalog=model_catalog(models))
    trained = [label for label in app.catalog if not label.endswith(BUNDLED_SUFFIX)]
    assert trained[0] == "tiny_b"  # listed before tiny_a, but larger
    assert app.default_webcam_model() == "tiny_a.pt"


def test_webcam_default_network_is_the_configured_one(models):
    app = WebApp(catalog=model_catalog(models), webcam_model="tiny_b")
    assert app.default_webcam_model() == "tiny_b"


def test_gatys_yields_progress_intermediates_and_the_result(app, image_factory, synthetic_style):
    photo = image_factory("photo.png", size=(40, 32))
    fractions = []
    updates = list(
        app.run_gatys(
            str(synthetic_style),
            str(photo),
            iterations=4,
            size=40,
            every=2,
            progress=lambda f, d: fractions.append(f),
        )
    )
    assert [status for _, status in updates[:2]] == ["iteration 2/4", "iteration 4/4"]
    assert updates[-1][1].startswith("done: best loss")
    assert updates[-1][0].size == (40, 32)
    assert fractions == [0.25, 0.5, 0.75, 1.0]


def test_gatys_bad_painting_is_a_one_line_message(app, tmp_path, image_factory):
    bad = bad_uploads(tmp_path / "bad")["truncated"]
    updates = list(app.run_gatys(str(bad), str(image_factory("photo.png")), iterations=2, size=32))
    assert updates == [(None, updates[0][1])] and updates[0][1].startswith(
        "error: truncated.jpg: truncated"
    )


def test_gatys_cancel_stops_the_optimization(app, image_factory, synthetic_style):
    photo = image_factory("photo.png", size=(64, 48))
    run = app.run_gatys(
        str(synthetic_style), str(photo), iterations=1000, size=64, session="s1", every=1
    )
    assert next(run)[1] == "iteration 1/1000"
    app.cancel_gatys("s1")
    rest = list(run)
    assert rest[-1] == (None, "Cancelled.") and len(rest) < 50
    _wait_unlocked(app._gatys_lock)


def test_gatys_stops_when_the_client_goes_away(app, image_factory, synthetic_style, monkeypatch):
    """The optimization is held at iteration 2 until the client is gone: it must stop there,
    however fast or slow this machine runs the iterations."""
    photo = image_factory("photo.png", size=(64, 48))
    gone, seen = threading.Event(), []
    real_optimize = app._optimize

    def held(painting, content, iterations, size, on_iteration):
        def step(it, image):
            seen.append(it)
            if it == 2:
                gone.wait(60)
            if it == 4:
                raise RuntimeError("still optimizing after the client went away")
            on_iteration(it, image)

        return real_optimize(painting, content, iterations, size, step)

    monkeypatch.setattr(app, "_optimize", held)
    run = app.run_gatys(str(synthetic_style), str(photo), iterations=1000, size=64, every=1)
    next(run)
    run.close()  # Gradio closes the generator of a cancelled or disconnected request
    gone.set()
    _wait_unlocked(app._gatys_lock, timeout=120)
    assert seen == [1, 2]


def _wait_unlocked(lock, timeout=10.0):
    """The optimization thread let go of the VGG (it stopped) within `timeout` s."""
    deadline = time.monotonic() + timeout
    while lock.locked() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not lock.locked()


def test_four_simultaneous_uploads_all_come_back_correct(models, tmp_path, image_factory):
    """Four clients upload different photos at once through Gradio's HTTP API; each gets its
    own photo stylized (compared with the bare Stylizer), none another's."""
    from gradio_client import Client, handle_file

    from tests.app_helpers import free_port
    from tests.helpers import compose_config

    cfg = compose_config(
        "app", f"models={models}", "device=cpu", f"port={free_port()}", "host=127.0.0.1"
    )
    demo = web.launch(cfg, block=False)
    try:
        photos = [image_factory(f"p{i}.png", size=(48 + 8 * i, 40), seed=i) for i in range(4)]
        url = f"http://127.0.0.1:{cfg.port}/"
        start = threading.Barrier(4, timeout=600)

        def upload(photo):
            client = Client(url, verbose=False)
            start.wait()  # the four requests leave together
            return client.predict(
                handle_file(str(photo)),
                "tiny_a.pt",
                1.0,
                False,
                "original",
                api_name="/stylize_photo",
            )

        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(upload, photos, timeout=600))
        bare = Stylizer.load(models / "tiny_a.pt", device="cpu")
        for photo, (image, status) in zip(photos, results):
            expected = bare(Image.open(photo).convert("RGB"))
            got = Image.open(image).convert("RGB")
            assert got.size == expected.size, status
            assert ImageChops.difference(got, expected).getbbox() is None
    finally:
        demo.close()


def _app_cli(*args, timeout=120):
    return subprocess.run(
        [sys.executable, str(REPO / "app.py"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**__import__("os").environ, "PYTHONPATH": str(REPO / "src")},
    )


def test_cli_help_names_the_program_and_its_options():
    result = _app_cli("--help")
    assert result.returncode == 0
    assert (
        result.stdout.startswith("app: ")
        and "port=N" in result.stdout
        and "[7860]" in result.stdout
    )


def test_cli_missing_models_folder_is_one_line_exit_2(tmp_path):
    result = _app_cli(f"models={tmp_path / 'nope'}", "port=1")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "fastnst: error: models=" in result.stderr


def test_cli_unknown_option_is_one_line_exit_2():
    result = _app_cli("prot=8000")
    assert result.returncode == 2 and "did you mean 'port'" in result.stderr


def test_a_network_always_runs_on_its_own_thread(app, image_factory):
    # the same thread for every request: its malloc arena and OpenMP team are reused
    threads = []
    stylizer, _ = app.stylizer("tiny_a.pt")
    real_call = type(stylizer).__call__
    stylizer.__class__ = type(
        "Traced",
        (type(stylizer),),
        {
            "__call__": lambda self, *a, **k: (
                threads.append(threading.current_thread().name) or real_call(self, *a, **k)
            )
        },
    )
    photo = str(image_factory("photo.png"))
    with ThreadPoolExecutor(3) as pool:
        results = list(
            pool.map(lambda _: app.stylize_photo(photo, "tiny_a.pt", 1.0, False, "64"), range(6))
        )
    assert all(r.image for r in results)
    assert len(threads) == 6 and len(set(threads)) == 1 and threads[0].startswith("fastnst-")


# -- multi-style networks: a style of the network, or a blend ---------------------------------

MULTI_STYLES = ["starry_night", "wave"]


@pytest.fixture
def multi_app(models, tmp_path):
    import torch

    from fastnst.artifacts import save_exported
    from fastnst.transformer import TransformerNet

    torch.manual_seed(0)
    net = TransformerNet(channels=[8, 16, 16], num_residual=1, styles=MULTI_STYLES).eval()
    with torch.no_grad():  # styles that differ clearly
        for norm in net.conditional_norms():
            norm.weight.normal_(1.0, 0.5)
            norm.bias.normal_(0.0, 0.5)
    save_exported(models / "multi.pt", net)
    return WebApp(catalog=model_catalog(models), device="cpu", output_dir=tmp_path / "out")


def _pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float64)


def test_a_multi_style_network_offers_its_styles_and_a_single_style_one_none(multi_app):
    assert multi_app.network_styles("multi.pt") == MULTI_STYLES
    assert multi_app.network_styles("tiny_a.pt") == []


def test_photo_with_a_style_of_a_multi_style_network_is_that_style(multi_app, image_factory):
    photo = str(image_factory("photo.png"))
    wave = multi_app.stylize_photo(photo, "multi.pt", 1.0, False, "64", network_style="wave")
    starry = multi_app.stylize_photo(
        photo, "multi.pt", 1.0, False, "64", network_style="starry_night"
    )
    assert wave.image and starry.image and "multi_pt_wave" in wave.status
    assert np.abs(_pixels(wave.image) - _pixels(starry.image)).mean() > 2  # the styles differ
    expected = Stylizer.load(multi_app.catalog["multi.pt"], device="cpu")(
        Image.open(photo), size=64, style="wave"
    )
    assert np.abs(_pixels(wave.image) - np.asarray(expected, dtype=np.float64)).max() <= 1


def test_photo_blend_with_weight_one_on_a_style_is_that_style(multi_app, image_factory):
    photo = str(image_factory("photo.png"))
    wave = multi_app.stylize_photo(photo, "multi.pt", 1.0, False, "64", network_style="wave")
    blend = multi_app.stylize_photo(
        photo, "multi.pt", 1.0, False, "64", mix="wave: 1, starry_night: 0"
    )
    half = multi_app.stylize_photo(
        photo, "multi.pt", 1.0, False, "64", mix="wave: 0.5, starry_night: 0.5"
    )
    assert np.abs(_pixels(blend.image) - _pixels(wave.image)).max() <= 1
    assert np.abs(_pixels(half.image) - _pixels(wave.image)).mean() > 1


def test_a_style_left_from_another_network_falls_back_to_the_first_style(multi_app, image_factory):
    photo = str(image_factory("photo.png"))
    stale = multi_app.stylize_photo(photo, "multi.pt", 1.0, False, "64", network_style="the_scream")
    first = multi_app.stylize_photo(
        photo, "multi.pt", 1.0, False, "64", network_style="starry_night"
    )
    assert stale.image and np.abs(_pixels(stale.image) - _pixels(first.image)).max() <= 1
    single = multi_app.stylize_photo(
        photo, "tiny_a.pt", 1.0, False, "64", network_style="wave", mix="wave: 1"
    )
    assert single.image  # a single-style network ignores both


@pytest.mark.parametrize(
    "mix, message",
    [
        ("wave 0.5", "write it as 'style: weight, style: weight'"),
        ("wave: lots", "write it as 'style: weight, style: weight'"),
        ("udnie: 1", "udnie"),
    ],
)
def test_a_bad_blend_is_one_line_in_the_page(multi_app, image_factory, mix, message):
    result = multi_app.stylize_photo(
        str(image_factory("photo.png")), "multi.pt", 1.0, False, "64", mix=mix
    )
    assert result.image is None and result.status.startswith("error:") and message in result.status
    assert "\n" not in result.status


def test_webcam_frame_uses_the_chosen_style_of_a_multi_style_network(multi_app):
    multi_app.webcam_size = 64
    frame = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    wave = multi_app.stylize_frame(frame, "multi.pt", "wave")
    starry = multi_app.stylize_frame(frame, "multi.pt", "starry_night")
    assert (
        wave.shape == (48, 64, 3) and np.abs(wave.astype(float) - starry.astype(float)).mean() > 2
    )


def test_parse_mix_reads_names_and_weights():
    assert web.parse_mix("starry_night: 0.7, wave:0.3") == {"starry_night": 0.7, "wave": 0.3}
    assert web.parse_mix(" wave: 1 ,") == {"wave": 1.0}


# -- hostile values through the API ------------------------------------------------------------


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("stroke_scale", "2x", "stroke scale must be a number, got '2x'"),
        ("stroke_scale", float("nan"), "stroke scale must be between"),
        ("stroke_scale", 100, "stroke scale must be between"),
        ("strength", "lots", "strength must be a number, got 'lots'"),
        ("output_size", "huge", "output size must be one of"),
    ],
)
def test_bad_request_values_are_one_line_user_errors(app, image_factory, field, value, message):
    photo = str(image_factory("photo.png"))
    args = {"strength": 1.0, "output_size": "64", "stroke_scale": 1.0, field: value}
    result = app.stylize_photo(photo, "tiny_a.pt", **args)
    assert result.image is None and "\n" not in result.status
    assert result.status.startswith("error: ") and message in result.status
    assert "internal error" not in result.status


@pytest.mark.parametrize(
    "mix, message",
    [
        ("wave: inf, starry_night: 1", "wave must be a number between 0 and"),
        ("wave: nan", "wave must be a number between 0 and"),
        ("wave: 1e308, starry_night: 1e308", "wave must be a number between 0 and"),
        ("wave: -1, starry_night: 1", "wave must be a number between 0 and"),
        ("wave: 0, starry_night: 0", "positive sum"),
        ("wav: 0.5, starry_night: 0.5", "did you mean 'wave'?"),
    ],
)
def test_non_finite_blends_are_one_line_errors_not_black_images(
    multi_app, image_factory, mix, message
):
    result = multi_app.stylize_photo(
        str(image_factory("photo.png")), "multi.pt", 1.0, False, "64", mix=mix
    )
    assert result.image is None and result.status.startswith("error: ")
    assert message in result.status and "\n" not in result.status


def test_errors_never_show_the_servers_paths(app, models, image_factory):
    broken = models / "broken.pt"
    broken.write_bytes(b"not a network")
    app.catalog["broken.pt"] = broken
    result = app.stylize_photo(str(image_factory("photo.png")), "broken.pt", 1.0, False, "64")
    assert result.status.startswith("error: ") and "broken.pt" in result.status
    assert str(models) not in result.status and "/" + models.parts[1] not in result.status
    assert web.public_message(f"{app.output_dir}/ab/x.png: cannot write") == "x.png: cannot write"


def test_the_upload_cap_counts_the_stroke_scale(models, tmp_path, image_factory):
    app = WebApp(
        catalog=model_catalog(models), device="cpu", output_dir=tmp_path / "o", max_megapixels=0.02
    )
    photo = str(image_factory("photo.png", size=(96, 64)))
    assert app.stylize_photo(photo, "tiny_a.pt", 1.0, False, "96", stroke_scale=1.0).image
    refused = app.stylize_photo(photo, "tiny_a.pt", 1.0, False, "96", stroke_scale=0.5)
    assert refused.image is None and "at stroke scale 0.5 paints" in refused.status
    assert "the app takes up to 0.02" in refused.status


def test_the_stroke_scale_slider_spans_the_one_range(app):
    from fastnst.stroke import STROKE_SCALE_RANGE

    demo = web.build_ui(app)
    slider = next(
        block
        for block in demo.blocks.values()
        if getattr(block, "elem_id", None) == "photo-stroke-scale"
    )
    assert (slider.minimum, slider.maximum) == STROKE_SCALE_RANGE


def test_gradio_temp_files_go_under_the_fastnst_cache_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("GRADIO_TEMP_DIR", raising=False)
    monkeypatch.setenv("FASTNST_CACHE_DIR", str(tmp_path / "cache"))
    assert web.use_fastnst_temp_dir() == tmp_path / "cache" / "gradio"
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "mine"))
    assert web.use_fastnst_temp_dir() == tmp_path / "mine"  # the user's choice wins


def test_the_upload_cap_counts_the_chosen_styles_own_scale(tmp_path, image_factory):
    """A multi-style file whose style 'fine' paints at 0.5 (meta stroke_scales): the cap counts
    that style's 4x pixels, not the file's default style's."""
    from fastnst.artifacts import save_exported
    from fastnst.transformer import TransformerNet

    models = tmp_path / "models"
    net = TransformerNet(channels=(8, 16, 32), num_residual=1, styles=["plain", "fine"])
    save_exported(models / "multi.pt", net, {"stroke_scales": {"fine": 0.5}})
    app = WebApp(
        catalog=model_catalog(models), device="cpu", output_dir=tmp_path / "o", max_megapixels=0.02
    )
    photo = str(image_factory("photo.png", size=(96, 64)))
    kept = app.stylize_photo(photo, "multi.pt", 1.0, False, "96", network_style="plain")
    assert kept.image, kept.status
    refused = app.stylize_photo(photo, "multi.pt", 1.0, False, "96", network_style="fine")
    assert refused.image is None and "at stroke scale 0.5 paints" in refused.status
