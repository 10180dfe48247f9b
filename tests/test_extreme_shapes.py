"""Extreme image shapes through every entry point (table-driven): 1x1, 1 px strips, 20000x16
panoramas, and size= down to 1. Each case either gives a correct result (the VGG extends images
too thin for its poolings, the transformer runs thin images at its minimum side and sizes them
back) or exits 2 with one line naming the file or option; never a traceback.

Tiny networks and 1 iteration keep the table fast; the entry points run in-process."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fastnst import cli
from fastnst.artifacts import load_network
from fastnst.data import StyleDataModule
from fastnst.export import export_model
from fastnst.images import fit_size
from fastnst.stylize import Stylizer

# (width, height)
SHAPES = {
    "1x1": (1, 1),
    "1x40": (1, 40),
    "40x1": (40, 1),
    "20000x16": (20000, 16),
    "16x20000": (16, 20000),
}


def shape_image(folder: Path, name: str) -> Path:
    w, h = SHAPES[name]
    arr = (np.random.default_rng(w * 7 + h).random((h, w, 3)) * 255).astype(np.uint8)
    path = folder / f"shape_{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def assert_result_or_one_line(code: int, err: str, output: Path | None, expected_size, names):
    """Exit 0 with an output of the expected (width, height), or exit 2 with one line naming one
    of `names` (the file, or the option that cannot work)."""
    assert "Traceback" not in err, err
    if code == 0:
        if output is not None:
            assert Image.open(output).size == expected_size
        return
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, (code, lines)
    assert any(n in lines[0] for n in names), lines[0]


def _hw(name: str, size: int | None) -> tuple[int, int]:
    w, h = SHAPES[name]
    h2, w2 = fit_size(h, w, size)
    return w2, h2


ENTRY_POINTS = [
    "gatys_content",
    "gatys_style",
    "stylize_image",
    "train_data",
    "evaluate",
    "exported_model",
]


@pytest.mark.parametrize("size", [32, 1])
@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_extreme_shape_gives_a_result_or_one_line(
    entry,
    shape,
    size,
    tmp_path,
    run_entry,
    model_file,  # noqa: F811
    synthetic_style,
    image_factory,
    request,
):
    img = shape_image(tmp_path / "in", shape)
    out = tmp_path / "out.png"
    if entry == "gatys_content":
        code, err = run_entry(
            cli.gatys_main,
            f"content={img}",
            f"style.image={synthetic_style}",
            f"output={out}",
            f"size={size}",
            "iterations=1",
            "progress=false",
        )
        assert_result_or_one_line(code, err, out, _hw(shape, size), [img.name, "size"])
        if size == 32:
            assert code == 0, err  # a usable size must give a result, whatever the photo's shape
    elif entry == "gatys_style":
        photo = image_factory("photo.png", size=(32, 24))
        code, err = run_entry(
            cli.gatys_main,
            f"content={photo}",
            f"style.image={img}",
            f"style.size={size}",
            f"output={out}",
            "size=32",
            "iterations=1",
            "progress=false",
        )
        assert code == 0, err
        assert Image.open(out).size == (32, 24)
    elif entry == "stylize_image":
        code, err = run_entry(
            cli.stylize_main,
            f"model={model_file}",
            f"input={img}",
            f"output={out}",
            *([f"size={size}"] if size != 32 else []),
        )
        assert code == 0, err
        assert Image.open(out).size == (SHAPES[shape] if size == 32 else _hw(shape, size))
    elif entry == "train_data":
        folder = tmp_path / "in"
        shape_image(tmp_path / "in2", shape).rename(folder / "copy.png")
        image_size = 16 if size == 32 else size
        try:
            dm = StyleDataModule(
                str(folder),
                "folder",
                image_size=image_size,
                batch_size=2,
                num_workers=0,
                val_fraction=0.0,
            )
        except (
            Exception
        ) as e:  # a size the transformer cannot train at: a user error naming the option
            assert type(e).__name__ == "FastNSTError" and "image_size" in str(e), e
            return
        dm.setup("fit")
        batch = next(iter(dm.train_dataloader()))
        assert batch["image"].shape == (2, 3, image_size, image_size) and int(batch["skipped"]) == 0
    elif entry == "evaluate":
        run = request.getfixturevalue("tiny_run")
        code, err = run_entry(
            cli.evaluate_main,
            f"run={run}",
            f"photos={img}",
            f"size={max(size, 16) if size == 32 else size}",
            "gatys_iterations=1",
            "overwrite=true",
            "tensorboard=false",
            f"cache_dir={tmp_path / 'cache'}",
        )
        assert_result_or_one_line(code, err, None, None, ["size"])
        if size == 32:
            assert code == 0, err
    elif entry == "exported_model":
        # export (with its parity check), then the exported file and the network agree on the shape
        net, meta = load_network(model_file)
        onnx_path = export_model(net, tmp_path / "m.onnx", "onnx", meta)
        x = torch.from_numpy(np.asarray(Image.open(img), dtype=np.float32) / 255).permute(2, 0, 1)[
            None
        ]
        options = dict(device="cpu", size=None if size == 32 else size)
        a = Stylizer.load(onnx_path, backend="onnxruntime", **options)(x)
        b = Stylizer.load(model_file, backend="torch", **options)(x)
        assert a.shape == b.shape and torch.allclose(a, b, atol=1e-3)


def test_stylize_folder_of_extreme_shapes(tmp_path, run_entry, model_file):  # noqa: F811
    folder = tmp_path / "in"
    paths = [shape_image(folder, name) for name in SHAPES]
    code, err = run_entry(
        cli.stylize_main, f"model={model_file}", f"input={folder}", f"output={tmp_path / 'out'}"
    )
    assert code == 0, err
    for name, path in zip(SHAPES, paths):
        assert Image.open(tmp_path / "out" / path.name).size == SHAPES[name]


def _video(path: Path, width: int, height: int, frames: int = 3) -> Path:
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            arr = np.full((height, width, 3), 40 * i, dtype=np.uint8)
            out.mux(stream.encode(__import__("av").VideoFrame.from_ndarray(arr, format="rgb24")))
        out.mux(stream.encode(None))
    return path


@pytest.mark.parametrize("size", [None, 1])
@pytest.mark.parametrize("shape", [(2, 2), (2, 64), (64, 2)])
def test_stylize_video_of_extreme_shapes(shape, size, tmp_path, run_entry, model_file):  # noqa: F811
    from fastnst.video import video_info

    src = _video(tmp_path / "in.mp4", *shape)
    out = tmp_path / "out.mp4"
    code, err = run_entry(
        cli.stylize_main,
        f"model={model_file}",
        f"input={src}",
        f"output={out}",
        *([f"size={size}"] if size else []),
    )
    assert "Traceback" not in err
    if size is None:
        assert code == 0, err
        info = video_info(out)
        assert (info["width"], info["height"], info["frames"]) == (*shape, 3)
    else:  # 1 px frames cannot be H.264 (yuv420p needs 2x2)
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 2 and len(lines) == 1 and src.name in lines[0] and "size" in lines[0], lines
        assert not out.exists()
