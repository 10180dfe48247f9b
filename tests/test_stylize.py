"""Stylizer API (PIL / path / tensor, size, strength, preserve_color, tiling, batching, backends)
and the stylize CLI on images and folders."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fastnst import Stylizer
from fastnst.apps.stylize import stylize_cli
from fastnst.artifacts import save_exported
from fastnst.cli import INFERENCE_CONFIG_DIR, run_reporting_errors
from fastnst.config import REPO_ROOT
from fastnst.errors import FastNSTError
from fastnst.images import load_image
from fastnst.metrics import psnr
from fastnst.transformer import TransformerNet
from tests.helpers import compose_config

TINY = {"channels": (8, 16, 32), "num_residual": 2}


@pytest.fixture
def tiny_net():
    torch.manual_seed(0)
    return TransformerNet(**TINY).eval()


@pytest.fixture
def model_file(tmp_path, tiny_net) -> Path:
    return save_exported(tmp_path / "model.pt", tiny_net, {"style": "test"})


@pytest.fixture
def photo(image_factory) -> torch.Tensor:
    return load_image(image_factory("photo.png", size=(64, 48), seed=1))


def compose_stylize(*overrides):
    return compose_config("stylize", *overrides, config_dir=INFERENCE_CONFIG_DIR)


def run_stylize(*overrides) -> int:
    """Run the stylize entry logic like the CLI does; returns the exit code."""
    try:
        run_reporting_errors(stylize_cli, compose_stylize(*overrides))
    except SystemExit as e:
        return int(e.code)
    return 0


# -- API ------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_tensor_round_trip_matches_network(model_file, tiny_net, backend):
    s = Stylizer.load(model_file, backend=backend)
    assert s.backend == backend
    x = torch.rand(2, 3, 37, 53)
    y = s(x)
    assert y.shape == x.shape and y.dtype == torch.float32
    with torch.no_grad():
        assert torch.allclose(y, tiny_net(x), atol=1e-4)
    single = s(x[0])  # (3, H, W) in -> (3, H, W) out
    assert single.shape == x[0].shape
    assert torch.allclose(single, y[0], atol=1e-4)


def test_pil_and_path_inputs_return_pil(model_file, image_factory):
    path = image_factory("p.png", size=(40, 30))
    s = Stylizer.load(model_file)
    from_path = s(path)
    from_str = s(str(path))
    from_pil = s(Image.open(path))
    assert isinstance(from_path, Image.Image) and from_path.size == (40, 30)
    assert np.array_equal(np.asarray(from_path), np.asarray(from_pil))
    assert np.array_equal(np.asarray(from_path), np.asarray(from_str))
    assert not np.array_equal(np.asarray(from_path), np.asarray(Image.open(path)))


def test_auto_backend_on_cpu_is_torch_and_onnxruntime_on_request(model_file):
    # torch with the fused NNPACK forward measured faster than onnxruntime on CPU (bench_inference)
    assert Stylizer.load(model_file, device="cpu").backend == "torch"
    pytest.importorskip("onnxruntime")
    assert Stylizer.load(model_file, device="cpu", backend="onnxruntime").backend == "onnxruntime"


def test_size_sets_longer_side(model_file, photo):
    s = Stylizer.load(model_file, size=32)
    assert s(photo).shape[-2:] == (24, 32)
    assert s(photo, size=40).shape[-2:] == (30, 40)
    assert s(photo, size=None).shape[-2:] == (48, 64)


def test_strength_zero_returns_photo_and_half_blends(model_file, photo):
    s = Stylizer.load(model_file)
    assert torch.equal(s(photo, strength=0.0), photo)
    full = s(photo)
    half = s(photo, strength=0.5)
    assert torch.allclose(half, 0.5 * photo + 0.5 * full, atol=1e-5)
    with pytest.raises(FastNSTError, match="strength"):
        s(photo, strength=1.5)


def test_preserve_color_keeps_photo_chroma(model_file, photo):
    from kornia.color import rgb_to_ycbcr

    s = Stylizer.load(model_file)
    plain, kept = s(photo), s(photo, preserve_color=True)
    chroma = lambda t: rgb_to_ycbcr(t)[:, 1:]  # noqa: E731
    luma = lambda t: rgb_to_ycbcr(t)[:, :1]  # noqa: E731
    kept_error = (chroma(kept) - chroma(photo)).abs().mean()
    plain_error = (chroma(plain) - chroma(photo)).abs().mean()
    # not exactly 0: clamping to [0, 1] after YCbCr -> RGB shifts chroma where luma is extreme
    assert kept_error < 0.02 and kept_error < plain_error / 3
    assert (luma(kept) - luma(plain)).abs().mean() < 0.01


def test_bf16_precision_close_to_fp32(model_file, photo):
    fp32 = Stylizer.load(model_file, backend="torch", precision="fp32")(photo)
    bf16 = Stylizer.load(model_file, backend="torch", precision="bf16")(photo)
    assert bf16.dtype == torch.float32
    assert psnr(bf16, fp32) > 30


def test_tiled_matches_untiled_without_seams(model_file, image_factory):
    x = load_image(image_factory("big.png", size=(300, 200), seed=3))
    s = Stylizer.load(model_file, backend="torch")
    full, tiled = s(x), s(x, tile=128)
    assert tiled.shape == full.shape
    assert psnr(tiled, full) > 30
    # the error must not sit on the seams: compare error near tile borders with the rest
    err = (tiled - full).abs().mean(dim=(0, 1))
    from fastnst.tiling import _starts

    overlap = 32
    cols = [x0 for x0 in _starts(300, 128, overlap)[1:]] + [
        x0 + 128 for x0 in _starts(300, 128, overlap)[:-1]
    ]
    rows = [y0 for y0 in _starts(200, 128, overlap)[1:]] + [
        y0 + 128 for y0 in _starts(200, 128, overlap)[:-1]
    ]
    seam = torch.zeros_like(err, dtype=torch.bool)
    for c in cols:
        seam[:, max(0, c - 3) : c + 3] = True
    for r in rows:
        seam[max(0, r - 3) : r + 3, :] = True
    assert err[seam].mean() < 3 * err[~seam].mean() + 2e-3
    # visible seam = a jump between neighbouring columns; no larger than inside the untiled output
    jumps_tiled = (tiled[..., 1:] - tiled[..., :-1]).abs().mean(dim=(0, 1, 2))
    jumps_full = (full[..., 1:] - full[..., :-1]).abs().mean(dim=(0, 1, 2))
    assert float((jumps_tiled - jumps_full).abs().max()) < 0.02


def test_tiled_matches_untiled_when_sides_are_not_multiples_of_4(model_file):
    """Tiles start on the net's 4 px downsampling grid: a tile at another offset computed every
    pixel differently (10/255 on average here, 8/255 for a trained net at 1000x601, tile 512)."""
    from fastnst.tiling import _spans

    s = Stylizer.load(model_file, backend="torch")
    base = torch.nn.functional.interpolate(
        torch.rand(1, 3, 20, 32, generator=torch.Generator().manual_seed(0)),
        size=(153, 253),
        mode="bilinear",
    )
    for h in range(150, 154):
        for w in range(250, 254):
            x = base[..., :h, :w].contiguous()
            diff = (s(x) - s(x, tile=128)).abs().mean(dim=(0, 1)) * 255
            near_seam = torch.zeros_like(diff, dtype=torch.bool)
            for axis, length in ((0, h), (1, w)):
                spans = _spans(length, 128, 32)
                for edge in [start for start, _ in spans[1:]] + [end for _, end in spans[:-1]]:
                    near_seam.narrow(
                        axis, max(0, edge - 16), min(32, length - max(0, edge - 16))
                    ).fill_(True)
            assert float(diff[~near_seam].mean()) < 1.0, (h, w)
            assert float(diff.mean()) < 1.0, (h, w)


def test_tile_spans_are_aligned_cover_the_image_and_overlap():
    from fastnst.tiling import ALIGN, _spans

    for tile in (16, 64, 128, 512):
        for overlap in (8, tile // 4, tile // 2):
            for length in range(1, 3 * tile):
                spans = _spans(length, tile, overlap)
                assert spans[0][0] == 0 and spans[-1][1] == length
                assert all(
                    start % ALIGN == 0 and end - start <= tile + ALIGN - 1 for start, end in spans
                )
                assert all(
                    a_end - b_start >= overlap for (_, a_end), (b_start, _) in zip(spans, spans[1:])
                )


def test_tile_uses_downscaled_statistics_for_huge_images(tiny_net):
    from fastnst.tiling import tiled_forward

    torch.manual_seed(1)
    x = torch.nn.functional.interpolate(torch.rand(1, 3, 6, 8), size=(96, 128), mode="bilinear")
    with torch.no_grad():
        exact = tiled_forward(tiny_net, x, tile=64)
        approx = tiled_forward(tiny_net, x, tile=64, stats_side=64)  # statistics on a 48x64 copy
        assert psnr(approx, exact) > 25 and not torch.equal(approx, exact)


def test_tile_needs_fastnst_network(tmp_path, tiny_net):
    from fastnst.export import export_model

    onnx_path = export_model(tiny_net, tmp_path / "m.onnx", "onnx")
    with pytest.raises(FastNSTError, match="m.onnx"):
        Stylizer.load(onnx_path, tile=64)


def test_stylize_many_batches_and_keeps_order(model_file):
    s = Stylizer.load(model_file, backend="torch")
    images = [torch.rand(1, 3, 32, 40) for _ in range(3)] + [torch.rand(1, 3, 24, 24)]
    calls = []
    original = s.runner.__call__

    class Spy:
        name = "torch"

        def __call__(self, x):
            calls.append(x.shape[0])
            return original(x)

    s.runner = Spy()
    outs = list(s.stylize_many(images, batch_size=2))
    assert calls == [2, 1, 1]  # same-size images batch together, up to batch_size
    for img, out in zip(images, outs):
        assert torch.allclose(out, s(img), atol=1e-5)


# -- loading -----------------------------------------------------------------------------------


def test_load_checkpoint_and_run_dir(tmp_path, tiny_net):
    state = {"net." + k: v for k, v in tiny_net.state_dict().items()}
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    ckpt.parent.mkdir(parents=True)
    torch.save(
        {"state_dict": state, "fastnst_model_config": dict(tiny_net.config), "epoch": 3}, ckpt
    )
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        ref = tiny_net(x)
    assert torch.allclose(Stylizer.load(ckpt)(x), ref, atol=1e-4)
    assert torch.allclose(
        Stylizer.load(tmp_path / "run")(x), ref, atol=1e-4
    )  # falls back to last.ckpt
    other = TransformerNet(**TINY)
    save_exported(tmp_path / "run" / "model.pt", other)  # model.pt wins over checkpoints
    with torch.no_grad():
        assert torch.allclose(Stylizer.load(tmp_path / "run")(x), other.eval()(x), atol=1e-4)


@pytest.mark.parametrize("content", [b"hello, not a model\n", "truncated", b""])
def test_wrong_model_file_names_the_file(tmp_path, model_file, photo, content):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(model_file.read_bytes()[:300] if content == "truncated" else content)
    with pytest.raises(FastNSTError, match="bad.pt"):
        Stylizer.load(bad)


def test_cli_wrong_model_exits_2(tmp_path, image_factory, capsys):
    bad = tmp_path / "notes.txt"
    bad.write_text("not a model")
    photo = image_factory("p.png")
    code = run_stylize(f"model={bad}", f"input={photo}", f"output={tmp_path / 'o.png'}")
    assert code == 2
    assert "notes.txt" in capsys.readouterr().err
    assert not (tmp_path / "o.png").exists()


# -- CLI -----------------------------------------------------------------------------------------


def test_cli_image_refuses_existing_output_unless_overwrite(
    tmp_path, model_file, image_factory, capsys
):
    # as gatys.py and export.py: exit 2 before any work (a folder job keeps existing outputs instead)
    photo = image_factory("p.png", size=(40, 30))
    out = tmp_path / "out" / "p.jpg"
    assert run_stylize(f"model={model_file}", f"input={photo}", f"output={out}", "size=32") == 0
    assert Image.open(out).size == (32, 24)
    out.write_bytes(b"keep me")
    capsys.readouterr()
    assert run_stylize(f"model={model_file}", f"input={photo}", f"output={out}") == 2
    assert out.read_bytes() == b"keep me"
    assert "already exists; pass overwrite=true" in capsys.readouterr().err
    assert (
        run_stylize(f"model={model_file}", f"input={photo}", f"output={out}", "overwrite=true") == 0
    )
    assert Image.open(out).size == (40, 30)


def test_cli_passes_strength_and_preserve_color_to_the_stylizer(
    tmp_path, model_file, image_factory
):
    photo = image_factory("p.png", size=(40, 30))
    bare = Stylizer.load(model_file, device="cpu")
    got = {}
    for strength, keep in ((0.6, "true"), (0.6, "false")):
        out = tmp_path / f"{strength}_{keep}.png"
        assert (
            run_stylize(
                f"model={model_file}",
                f"input={photo}",
                f"output={out}",
                f"strength={strength}",
                f"preserve_color={keep}",
                "device=cpu",
            )
            == 0
        )
        got[keep] = np.asarray(Image.open(out).convert("RGB"), dtype=np.float64)
        expected = bare(
            Image.open(photo).convert("RGB"), strength=strength, preserve_color=keep == "true"
        )
        assert np.abs(got[keep] - np.asarray(expected, dtype=np.float64)).max() <= 1, (
            strength,
            keep,
        )
    assert np.abs(got["true"] - got["false"]).mean() > 2  # preserve_color changed the result


def test_cli_never_overwrites_input(tmp_path, model_file, image_factory):
    photo = image_factory("p.png")
    before = photo.read_bytes()
    assert (
        run_stylize(f"model={model_file}", f"input={photo}", f"output={photo}", "overwrite=true")
        == 2
    )
    assert photo.read_bytes() == before
    folder = photo.parent
    assert run_stylize(f"model={model_file}", f"input={folder}", f"output={folder / 'sub'}") == 2


def test_cli_folder_mirrors_tree_and_reports_corrupt_file(tmp_path, model_file, image_factory):
    """Subprocess through the real shim: exit code, stderr, and no Hydra outputs/ folder."""
    src = tmp_path / "photos"
    image_factory("photos/a.png", size=(40, 32), seed=1)
    image_factory("photos/nested/b.jpg", size=(40, 32), seed=2)
    image_factory("photos/nested/c.tif", size=(24, 32), seed=3)
    (src / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    dst = tmp_path / "styled"
    (dst / "nested").mkdir(parents=True)
    (dst / "nested" / "b.jpg").write_bytes(b"existing")
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "stylize.py"),
            f"model={model_file}",
            f"input={src}",
            f"output={dst}",
            "batch_size=2",
            "backend=torch",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert "broken.jpg" in proc.stderr and "1 of 3 image(s) failed" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert Image.open(dst / "a.png").size == (40, 32)
    assert Image.open(dst / "nested" / "c.png").size == (24, 32)  # tif -> png
    assert (dst / "nested" / "b.jpg").read_bytes() == b"existing"  # kept, not overwritten
    assert not (dst / "broken.jpg").exists()
    assert not (tmp_path / "outputs").exists() and not list(tmp_path.glob("*.log"))


# -- stroke scale below 1 in tiles, memory -----------------------------------------------------


@pytest.mark.parametrize("sizes", [(10, 37), (37, 10), (333, 1000), (1000, 333), (50, 201)])
def test_resize_taps_are_resize_tensor(sizes):
    from fastnst.images import resize_tensor
    from fastnst.tiling import _resize_block, resize_taps

    n_in, n_out = sizes
    x = torch.rand(1, 3, n_in, 5, generator=torch.Generator().manual_seed(0))
    matrix = _resize_block(resize_taps(n_in, n_out), 0, n_out, 0, n_in)
    expected = torch.nn.functional.interpolate(
        x, size=(n_out, 5), mode="bicubic", align_corners=False, antialias=True
    )
    assert (torch.matmul(matrix, x) - expected).abs().max() < 1e-4
    assert resize_tensor(x, (n_out, 5)).shape[-2] == n_out


@pytest.mark.parametrize("size", [(140, 180), (141, 179), (280, 360)])
def test_tiled_enlargement_equals_tiling_the_enlarged_photo_and_never_builds_it(
    tiny_net, monkeypatch, size
):
    """tile= at stroke scale < 1: the same painting as enlarging the photo whole and tiling it,
    but the network never sees more than a tile and no resize makes anything larger than the
    statistics copy."""
    from fastnst import tiling
    from fastnst.images import resize_tensor

    photo = torch.rand(1, 3, 70, 90, generator=torch.Generator().manual_seed(3))
    tile = 64
    big = resize_tensor(photo, size)
    expected = resize_tensor(tiling.tiled_forward(tiny_net, big, tile), (70, 90))
    seen = []
    real_resize = tiling.resize_tensor

    def recording_resize(t, out):
        seen.append(out[0] * out[1])
        return real_resize(t, out)

    def recording_forward(net, x, style=None, stats=None):
        seen.append(x.shape[-2] * x.shape[-1])
        return tiling.plain_forward(net, x, style, stats)

    monkeypatch.setattr(tiling, "resize_tensor", recording_resize)
    got = tiling.tiled_enlarged_forward(tiny_net, photo, size, tile, forward=recording_forward)
    assert (got - expected).abs().max() < 1e-4
    whole = size[0] * size[1]
    largest_tile = (tile + tiling.ALIGN) ** 2
    assert max(seen[1:]) <= largest_tile < whole  # seen[0]: the statistics copy (<= 1024 px)


def test_stylizer_tiles_a_stroke_scale_below_one_like_the_whole_enlargement(model_file):
    from fastnst.images import resize_tensor
    from fastnst.tiling import tiled_forward

    s = Stylizer.load(model_file, device="cpu", backend="torch")
    photo = torch.rand(1, 3, 50, 70, generator=torch.Generator().manual_seed(4))
    got = s(photo, stroke_scale=0.5, tile=64)
    big = resize_tensor(photo, (100, 140))
    expected = resize_tensor(tiled_forward(s.net, big, 64), (50, 70))
    assert got.shape == photo.shape and (got - expected).abs().max() < 1e-3


def test_memory_refusal_names_the_largest_size_that_fits(model_file, photo):
    from fastnst.memory import MemoryLimitError

    s = Stylizer.load(model_file, device="cpu", backend="torch", max_memory_gb=0.05)
    with pytest.raises(MemoryLimitError) as e:
        s(photo, size=3000, stroke_scale=0.25)
    message = str(e.value)
    assert "3000x2250 px at stroke scale 0.25, the network runs on 12000x9000" in message
    assert "more than max_memory_gb=0.05" in message and "\n" not in message
    best = int(message.split("size=")[1].split()[0])
    limit = 0.05e9
    assert s.memory_estimate(48, 64, size=best, stroke_scale=0.25) <= limit
    assert s.memory_estimate(48, 64, size=best + 1, stroke_scale=0.25) > limit
    assert s(photo, size=best, stroke_scale=0.25).shape[-1] == best  # and it runs


def test_size_100000_is_refused_before_allocating(model_file, photo, monkeypatch):
    from fastnst.memory import MemoryLimitError

    s = Stylizer.load(model_file, device="cpu", backend="torch")
    monkeypatch.setattr(
        Stylizer, "_stylize", lambda *a: pytest.fail("work started")
    )  # refused before any resize
    with pytest.raises(MemoryLimitError, match="100000x75000 px .* needs about"):
        s(photo, size=100000)


def test_tile_bounds_the_estimate_of_a_small_stroke_scale(model_file):
    s = Stylizer.load(model_file, device="cpu", backend="torch")
    whole = s.memory_estimate(2000, 3000, stroke_scale=0.25)
    tiled = s.memory_estimate(2000, 3000, stroke_scale=0.25, tile=512)
    assert whole > 30e9 and tiled < 2e9  # 12000x8000 whole vs one 512 px tile at a time


def test_out_of_memory_is_a_one_line_error(model_file, photo, monkeypatch):
    from fastnst.memory import MemoryLimitError

    s = Stylizer.load(model_file, device="cpu", backend="torch")

    def exhausted(*args):
        raise RuntimeError(
            "[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate "
            "memory: you tried to allocate 80000000000 bytes."
        )

    monkeypatch.setattr(Stylizer, "_paint", exhausted)
    with pytest.raises(MemoryLimitError, match="out of memory stylizing 64x48 px"):
        s(photo)


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("max_memory_gb", float("nan"), "max_memory_gb must be a positive number"),
        ("max_memory_gb", "lots", "max_memory_gb must be a number of GB"),
        ("tile_overlap", "abc", "tile_overlap must be a whole number"),
        ("stroke_scale", "2x", "stroke_scale must be a number"),
        ("stroke_scale", float("inf"), "stroke_scale must be between"),
    ],
)
def test_options_are_checked_once_at_load_and_per_call(model_file, photo, option, value, message):
    with pytest.raises(FastNSTError, match=message):
        Stylizer.load(model_file, device="cpu", **{option: value})
    s = Stylizer.load(model_file, device="cpu")
    with pytest.raises(FastNSTError, match=message):
        s(photo, **{option: value})


def test_a_bundled_network_is_named_by_its_style_not_its_install_path():
    from fastnst import zoo

    if not zoo.bundled_styles().get("six_styles"):
        pytest.skip("six_styles is not bundled")
    with pytest.raises(FastNSTError) as e:
        Stylizer.load("six_styles", device="cpu", mix={"udnie": 0.5, "wav": 0.5})
    assert str(e.value).startswith("six_styles: no style 'wav' (did you mean 'wave'?)")
    assert str(zoo.ZOO_DIR) not in str(e.value)


# -- outputs that are links, folder jobs ------------------------------------------------------


def test_cli_replaces_a_symlinked_output_never_its_target(tmp_path, model_file, image_factory):
    photo = image_factory("photo.png", size=(40, 32))
    marker = image_factory("marker.png", size=(20, 20), seed=9)
    before = marker.read_bytes()
    planted = tmp_path / "planted.png"
    planted.symlink_to(marker)
    assert run_stylize(f"model={model_file}", f"input={photo}", f"output={planted}") == 2
    code = run_stylize(
        f"model={model_file}", f"input={photo}", f"output={planted}", "overwrite=true"
    )
    assert code == 0 and marker.read_bytes() == before  # the marker is untouched
    assert not planted.is_symlink() and Image.open(planted).size == (40, 32)


def test_cli_dangling_output_link_never_creates_its_target(tmp_path, model_file, image_factory):
    photo = image_factory("photo.png", size=(40, 32))
    dangling = tmp_path / "dangling.png"
    target = tmp_path / "elsewhere" / "target.png"
    dangling.symlink_to(target)
    assert run_stylize(f"model={model_file}", f"input={photo}", f"output={dangling}") == 2
    assert dangling.is_symlink() and not target.exists()
    code = run_stylize(
        f"model={model_file}", f"input={photo}", f"output={dangling}", "overwrite=true"
    )
    assert code == 0 and not target.exists() and not dangling.is_symlink()


def test_folder_job_keeps_links_and_outputs_that_appear_meanwhile(
    tmp_path, model_file, image_factory, monkeypatch, capsys
):
    from fastnst.apps import stylize as app

    for name in ("a", "b", "c"):
        image_factory(f"photos/{name}.png", size=(32, 24), seed=ord(name))
    marker = image_factory("marker.png", size=(20, 20), seed=9)
    before = marker.read_bytes()
    out = tmp_path / "out"
    out.mkdir()
    (out / "c.png").symlink_to(marker)  # a planted link: an existing output, kept
    real_save = app.save_image

    def save_while_another_job_writes_b(image, path, overwrite=False):
        if path.name == "a.png":
            (out / "b.png").write_bytes(b"the other job's")
        return real_save(image, path, overwrite=overwrite)

    monkeypatch.setattr(app, "save_image", save_while_another_job_writes_b)
    s = Stylizer.load(model_file, device="cpu", backend="torch", batch_size=1)
    written, failures = app.stylize_folder(s, tmp_path / "photos", out, progress=False)
    assert (written, failures) == (1, [])
    assert (out / "b.png").read_bytes() == b"the other job's" and marker.read_bytes() == before
    err = capsys.readouterr().err
    assert "1 output(s) appeared" in err and "b.png" in err
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp file left
