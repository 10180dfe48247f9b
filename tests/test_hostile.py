"""Hostile files and values (docs/reliability.md, "Hostile files and values"): outputs that are
links, non-finite or overflowing blends, values that would exhaust memory, hostile requests to
the web app. Each row either ends in one line on stderr with exit code 2, or is handled safely
(exit 0); in both cases nothing outside the output is written, a link's target included."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import torch

from fastnst.cli import stylize_main
from fastnst.formats import save_exported
from fastnst.transformer import TransformerNet
from tests.helpers import make_image, run_main

STYLES = ["starry_night", "wave"]


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """A folder holding everything a row may touch: a single-style and a two-style network, a
    photo, a folder of photos and a marker image (what a planted link points to); the current
    folder."""
    torch.manual_seed(0)
    save_exported(tmp_path / "single.pt", TransformerNet(channels=[8, 16, 16], num_residual=1))
    save_exported(
        tmp_path / "multi.pt", TransformerNet(channels=[8, 16, 16], num_residual=1, styles=STYLES)
    )
    save_exported(  # a network that paints at twice its training scale (as udnie)
        tmp_path / "coarse.pt",
        TransformerNet(channels=[8, 16, 16], num_residual=1),
        {"stroke_scale": 2.0},
    )
    make_image(tmp_path / "photo.png", size=(40, 30), seed=1)
    for i in range(2):
        make_image(tmp_path / "photos" / f"p{i}.png", size=(32, 24), seed=10 + i)
    make_image(tmp_path / "marker.png", size=(20, 20), seed=9)
    (tmp_path / "out").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


def snapshot(root: Path) -> dict[str, object]:
    """Every entry under `root`, links not followed: a link's target, a file's hash."""
    entries = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                entries[rel] = ("link", os.readlink(path))
            elif path.is_file():
                entries[rel] = ("file", hashlib.sha256(path.read_bytes()).hexdigest())
            else:
                entries[rel] = ("folder",)
    return entries


def changed(before: dict, after: dict) -> set[str]:
    return {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}


def stylize(monkeypatch, capsys, *args) -> tuple[int, str]:
    code, _, err = run_main(stylize_main, args, monkeypatch, capsys)
    return code, err


def assert_one_line(err: str, *fragments: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("fastnst: error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], err


# -- outputs that are links --------------------------------------------------------------------


def test_an_output_linked_to_another_file_is_refused_without_overwrite(
    sandbox, monkeypatch, capsys
):
    (sandbox / "planted.png").symlink_to(sandbox / "marker.png")
    before = snapshot(sandbox)
    code, err = stylize(
        monkeypatch, capsys, "model=single.pt", "input=photo.png", "output=planted.png"
    )
    assert code == 2
    assert_one_line(err, "planted.png: already exists; pass overwrite=true")
    assert changed(before, snapshot(sandbox)) == set()


def test_overwrite_replaces_the_link_never_its_target(sandbox, monkeypatch, capsys):
    (sandbox / "planted.png").symlink_to(sandbox / "marker.png")
    before = snapshot(sandbox)
    code, _ = stylize(
        monkeypatch,
        capsys,
        "model=single.pt",
        "input=photo.png",
        "output=planted.png",
        "overwrite=true",
    )
    assert code == 0
    assert changed(before, snapshot(sandbox)) == {"planted.png"}  # the marker is untouched
    assert not (sandbox / "planted.png").is_symlink()


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_dangling_output_link_never_creates_its_target(sandbox, monkeypatch, capsys, overwrite):
    (sandbox / "dangling.png").symlink_to(sandbox / "elsewhere.png")
    before = snapshot(sandbox)
    code, err = stylize(
        monkeypatch,
        capsys,
        "model=single.pt",
        "input=photo.png",
        "output=dangling.png",
        f"overwrite={str(overwrite).lower()}",
    )
    assert not (sandbox / "elsewhere.png").exists()
    if overwrite:
        assert code == 0 and changed(before, snapshot(sandbox)) == {"dangling.png"}
    else:
        assert code == 2 and changed(before, snapshot(sandbox)) == set()
        assert_one_line(err, "dangling.png: already exists")


def test_a_folder_job_keeps_a_planted_link_among_its_outputs(sandbox, monkeypatch, capsys):
    (sandbox / "out" / "p0.png").symlink_to(sandbox / "marker.png")
    before = snapshot(sandbox)
    code, _ = stylize(monkeypatch, capsys, "model=single.pt", "input=photos", "output=out")
    assert code == 0
    assert changed(before, snapshot(sandbox)) == {"out/p1.png"}  # the link and marker stay


def test_a_folder_job_never_writes_through_a_linked_subfolder(sandbox, monkeypatch, capsys):
    make_image(sandbox / "photos" / "nested" / "p2.png", size=(32, 24), seed=12)
    victim = sandbox / "victim"
    victim.mkdir()
    (sandbox / "out" / "nested").symlink_to(victim, target_is_directory=True)
    before = snapshot(sandbox)
    code, err = stylize(monkeypatch, capsys, "model=single.pt", "input=photos", "output=out")
    assert code == 2
    assert "not written: " in err and "out/nested is a symbolic link" in err
    assert err.strip().splitlines()[-1].startswith("fastnst: error: 1 of 3 image(s) failed")
    assert changed(before, snapshot(sandbox)) == {"out/p0.png", "out/p1.png"}  # victim empty


@pytest.mark.parametrize("kind", ["video", "export"])
def test_video_and_export_outputs_replace_a_link_never_its_target(
    sandbox, monkeypatch, capsys, kind
):
    from fastnst.cli import export_main
    from fastnst.video import write_video

    if kind == "video":
        write_video((torch.rand(1, 3, 32, 32) for _ in range(3)), sandbox / "clip.mp4", rate=10)
        main, output = stylize_main, "styled.mp4"
        args = ["model=single.pt", "input=clip.mp4", f"output={output}"]
    else:
        pytest.importorskip("onnx")
        main, output = export_main, "net.onnx"
        args = ["model=single.pt", "format=onnx", f"output={output}"]
    (sandbox / output).symlink_to(sandbox / "marker.png")
    before = snapshot(sandbox)
    code, _, err = run_main(main, args, monkeypatch, capsys)
    assert code == 2 and changed(before, snapshot(sandbox)) == set()
    assert_one_line(err, f"{output}: already exists")
    code, _, err = run_main(main, [*args, "overwrite=true"], monkeypatch, capsys)
    assert code == 0, err
    assert changed(before, snapshot(sandbox)) == {output}  # the marker is untouched


# -- blends --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "mix, message",
    [
        ("{wave: inf, starry_night: 1}", "mix: the weight of wave must be a number between 0"),
        ("{wave: nan}", "mix: the weight of wave must be a number between 0"),
        ("{wave: 1e308, starry_night: 1e308}", "the weight of wave must be a number between 0"),
        ("{wave: -1, starry_night: 1}", "mix: the weight of wave must be a number between 0"),
        ("{wave: 0, starry_night: 0}", "mix: the weights must have a positive sum"),
        ("{wave: true}", "mix: the weight of wave must be a number, got True"),
        ("{wav: 0.5, starry_night: 0.5}", "no style 'wav' (did you mean 'wave'?)"),
    ],
)
def test_non_finite_overflowing_negative_or_empty_blends_are_one_line(
    sandbox, monkeypatch, capsys, mix, message
):
    before = snapshot(sandbox)
    code, err = stylize(
        monkeypatch, capsys, "model=multi.pt", f"mix={mix}", "input=photo.png", "output=o.png"
    )
    assert code == 2
    assert_one_line(err, message)
    assert changed(before, snapshot(sandbox)) == set()


# -- numbers that would exhaust memory, or are not numbers ------------------------------------


@pytest.mark.parametrize(
    "options, message",
    [
        (["size=100000"], "100000x75000 px at stroke scale 1: needs about"),
        (
            ["size=3000", "stroke_scale=0.25", "max_memory_gb=0.5"],
            "the network runs on 12000x9000: needs about",
        ),
        (["max_memory_gb=nan"], "max_memory_gb must be a positive number"),
        (["max_memory_gb=-1"], "max_memory_gb must be a positive number"),
        (["stroke_scale=nan"], "stroke_scale must be between 0.25 and 8"),
        (["stroke_scale=inf"], "stroke_scale must be between 0.25 and 8"),
        (["stroke_scale=1e308"], "stroke_scale must be between 0.25 and 8"),
        (["stroke_scale=0"], "stroke_scale must be between 0.25 and 8"),
        (["tile=8"], "tile must be at least 16"),
        (["batch_size=0"], "batch_size must be at least 1"),
        (["size=-5"], "size must be at least 1"),
    ],
)
def test_values_that_would_exhaust_memory_or_are_not_finite_are_one_line(
    sandbox, monkeypatch, capsys, options, message
):
    before = snapshot(sandbox)
    code, err = stylize(
        monkeypatch, capsys, "model=single.pt", "input=photo.png", "output=o.png", *options
    )
    assert code == 2
    assert_one_line(err, message)
    assert changed(before, snapshot(sandbox)) == set()


def test_a_stroke_scale_whose_product_with_the_networks_is_out_of_range_is_one_line(
    sandbox, monkeypatch, capsys
):
    before = snapshot(sandbox)
    code, err = stylize(
        monkeypatch, capsys, "model=coarse.pt", "input=photo.png", "output=o.png", "stroke_scale=8"
    )
    assert code == 2
    assert_one_line(
        err,
        "stroke_scale=8 times the network's own stroke scale 2 is 16, outside 0.25..8; "
        "use a stroke_scale between 0.25 and 4 for this network",
    )
    assert changed(before, snapshot(sandbox)) == set()


def test_the_smallest_stroke_scale_in_tiles_fits_where_whole_it_would_not(
    sandbox, monkeypatch, capsys
):
    """Whole, the photo enlarged 4x a side does not fit the limit: refused in one line naming
    tile=; in tiles the same photo and scale run (memory bounded by the tile), writing only
    the output."""
    options = ["size=400", "stroke_scale=0.25", "max_memory_gb=0.5"]
    args = ("model=single.pt", "input=photo.png", "output=o.png", *options)
    before = snapshot(sandbox)
    code, err = stylize(monkeypatch, capsys, *args)
    assert code == 2
    assert_one_line(err, "the network runs on 1600x1200", "or tile=512 at this size")
    assert changed(before, snapshot(sandbox)) == set()
    code, err = stylize(monkeypatch, capsys, *args, "tile=256")
    assert code == 0, err
    assert changed(before, snapshot(sandbox)) == {"o.png"}


# -- the web app ---------------------------------------------------------------------------------


@pytest.fixture
def web_app(sandbox):
    pytest.importorskip("gradio")
    from fastnst.apps.web import WebApp, model_catalog

    return WebApp(
        catalog=model_catalog(sandbox), device="cpu", output_dir=sandbox / "served", max_side=4096
    )


@pytest.mark.parametrize(
    "request_values, message",
    [
        ({"stroke_scale": "2x"}, "stroke scale must be a number, got '2x'"),
        ({"stroke_scale": float("inf")}, "stroke scale must be between"),
        ({"strength": "nan-ish"}, "strength must be a number"),
        ({"output_size": "100000"}, "paints 7500 megapixels; the app takes up to 40"),
        ({"mix": "wave: inf, starry_night: 1"}, "the weight of wave must be a number between 0"),
        ({"mix": "wave: 0, starry_night: 0"}, "positive sum"),
        ({"mix": "wav: 1"}, "did you mean 'wave'?"),
    ],
)
def test_web_requests_with_hostile_values_are_one_line_without_server_paths(
    web_app, sandbox, request_values, message
):
    before = snapshot(sandbox)
    values = {"strength": 1.0, "output_size": "64", "stroke_scale": 1.0, **request_values}
    result = web_app.stylize_photo(str(sandbox / "photo.png"), "multi.pt", **values)
    assert result.image is None and result.status.startswith("error: ")
    assert message in result.status and "\n" not in result.status
    assert "internal error" not in result.status and str(sandbox) not in result.status
    assert changed(before, snapshot(sandbox)) == set()
