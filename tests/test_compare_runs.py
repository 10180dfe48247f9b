"""scripts/figures/compare_runs.py: one grid image and one metrics table for several runs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from fastnst.apps import compare_runs as compare  # scripts/figures/compare_runs.py's logic
from fastnst.artifacts import save_exported
from fastnst.config import REPO_ROOT
from fastnst.transformer import TransformerNet

# small, fast comparisons: two photos at 32 px, no Gatys reference, the plain torch path
SMALL_FAST = [
    "--num-photos",
    "2",
    "--size",
    "32",
    "--cell",
    "40",
    "--gatys-iterations",
    "0",
    "--backend",
    "torch",
    "--device",
    "cpu",
]


def fake_run(compose_train, root, style, data_root, norm, seed):
    """A run directory as train() leaves it (config.yaml + model.pt), without the training."""
    run_dir = root / style / "folder" / "johnson_tiny" / f"run{seed}"
    cfg = compose_train(
        f"style={style}",
        "style.size=32",
        "data=folder",
        f"data.root={data_root}",
        "model.channels=[8,16,32]",
        "model.num_residual=1",
        f"model.norm={norm}",
        run_dir=run_dir,
    )
    run_dir.mkdir(parents=True)
    OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
    torch.manual_seed(seed)
    net = TransformerNet(channels=(8, 16, 32), num_residual=1, norm=norm)
    save_exported(run_dir / "model.pt", net, {"style": style, "global_step": 7})
    return run_dir


@pytest.fixture
def two_runs(compose_train, style_env, photo_folder, tmp_path):
    photos = photo_folder(4, size=(48, 40))
    return [
        fake_run(compose_train, tmp_path / "runs", "starry_night", photos, "instance", 1),
        fake_run(compose_train, tmp_path / "runs", "the_scream", photos, "batch", 2),
    ], photos


def test_grid_and_table(two_runs, tmp_path, monkeypatch, capsys):
    runs, photos = two_runs
    out = tmp_path / "report"
    args = [
        *map(str, runs),
        "--out",
        str(out),
        "--photos",
        str(photos),
        "--num-photos",
        "3",
        "--size",
        "32",
        "--cell",
        "40",
        "--gatys-iterations",
        "2",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--backend",
        "torch",
        "--device",
        "cpu",
    ]
    assert compare.main(args) == 0

    # 3 photo rows; columns: photo, two distinct styles, two runs
    grid = Image.open(out / "grid.png")
    assert (
        grid.size
        == compare.grid_size(3, 5, 40)
        == (5 * 40 + 6 * compare.PAD, compare.HEADER + 3 * 40 + 4 * compare.PAD)
    )
    header = np.asarray(grid.convert("L"))[: compare.HEADER]
    for c in range(5):  # every column has a label
        x = compare.PAD + c * (40 + compare.PAD)
        assert (header[:, x : x + 40] < 128).any(), f"column {c} has no header text"
    # the photo column shows the evaluation photos, center-cropped
    first = np.asarray(grid)[compare.HEADER + compare.PAD :][
        :40, compare.PAD : compare.PAD + 40
    ].astype(float)
    photo = np.asarray(
        Image.open(photos / "000.png").convert("RGB").resize((48, 40)).crop((4, 0, 44, 40))
    ).astype(float)
    assert np.abs(first - photo).mean() < 25

    table = (out / "metrics.md").read_text()
    rows = [
        line
        for line in table.splitlines()
        if line.startswith("| starry") or line.startswith("| the_scream")
    ]
    assert len(rows) == 2
    assert "| starry_night | folder | c8-16-32 r1 (IN) | 7 |" in rows[0]
    assert "| the_scream | folder | c8-16-32 r1 (BN) | 7 |" in rows[1]
    assert "3 photos at 32 px" in table and table in capsys.readouterr().out
    evaluations = json.loads((out / "metrics.json").read_text())
    assert [e["run_dir"] for e in evaluations] == [str(r) for r in runs]
    assert all((r / "eval.json").exists() for r in runs)

    # an existing report is not replaced without --overwrite; with it, the evaluations are reused
    assert compare.main(args) == 2
    assert "already exists" in capsys.readouterr().err
    calls = []
    monkeypatch.setattr(compare, "evaluate_run", lambda *a, **k: calls.append(a))
    assert compare.main([*args, "--overwrite"]) == 0
    assert calls == []
    # other photos: the runs are evaluated again, so the table compares like with like
    with pytest.raises(TypeError):  # the stub returns None instead of an evaluation
        compare.compare_runs(
            runs,
            out,
            photos=photos,
            num_photos=2,
            size=32,
            cell=40,
            gatys_iterations=2,
            backend="torch",
            device="cpu",
            overwrite=True,
        )
    assert [c[0] for c in calls] == runs


def test_not_a_run_is_exit_2(tmp_path, capsys):
    assert compare.main([str(tmp_path), "--out", str(tmp_path / "report")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "config.yaml" in err


def test_multi_style_run_has_one_column_and_one_row_per_style(
    compose_train, style_env, photo_folder, tmp_path
):
    photos = photo_folder(2, size=(48, 40))
    run_dir = tmp_path / "runs" / "multi" / "folder" / "johnson_tiny" / "run"
    cfg = compose_train(
        "style=multi",
        "style.names=[starry_night,the_scream]",
        "style.size=32",
        "data=folder",
        f"data.root={photos}",
        "model.channels=[8,16,32]",
        "model.num_residual=1",
        run_dir=run_dir,
    )
    from fastnst.multistyle import expand_multi_style

    expand_multi_style(cfg)
    run_dir.mkdir(parents=True)
    OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
    torch.manual_seed(0)
    net = TransformerNet(
        channels=(8, 16, 32), num_residual=1, styles=["starry_night", "the_scream"]
    )
    save_exported(run_dir / "model.pt", net, {"style": "multi", "global_step": 3})
    out = tmp_path / "report"
    assert (
        compare.main(
            [
                str(run_dir),
                "--out",
                str(out),
                "--photos",
                str(photos),
                *SMALL_FAST,
            ]
        )
        == 0
    )
    # columns: photo, the two styles, the network in each of its two styles
    assert Image.open(out / "grid.png").size == compare.grid_size(2, 5, 40)
    table = (out / "metrics.md").read_text()
    assert "| starry_night (multi) | folder | c8-16-32 r1 (IN) | 3 |" in table
    assert "| the_scream (multi) | folder | c8-16-32 r1 (IN) | 3 |" in table
    ev = json.loads((run_dir / "eval.json").read_text())
    assert set(ev["per_style"]) == {"starry_night", "the_scream"}


def test_video_adds_the_warping_error_column(two_runs, tmp_path, capsys):
    from fastnst.video import write_video
    from tests.helpers import shifted_frames

    runs, photos = two_runs
    clip = (
        write_video(shifted_frames(4, size=48, step=2), tmp_path / "clip.mp4")
        and tmp_path / "clip.mp4"
    )
    out = tmp_path / "report"
    args = [
        *map(str, runs),
        "--out",
        str(out),
        "--photos",
        str(photos),
        "--num-photos",
        "1",
        "--size",
        "32",
        "--cell",
        "40",
        "--gatys-iterations",
        "0",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--device",
        "cpu",
        "--video",
        str(clip),
        "--video-frames",
        "3",
        "--video-size",
        "48",
    ]
    assert compare.main(args) == 0
    table = (out / "metrics.md").read_text()
    assert "| warping error |" in table.splitlines()[0]
    assert "first 3 frames at 48 px" in table
    evaluations = json.loads((out / "metrics.json").read_text())
    assert all(e["metrics"]["warping_error"] > 0 for e in evaluations)
    assert compare.main([*args[:-6], "--video", str(tmp_path / "none.mp4"), "--overwrite"]) == 2
    assert "none.mp4: --video not found" in capsys.readouterr().err


def test_tensorboard_option_writes_the_comparison_as_a_tensorboard_run(two_runs, tmp_path, capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from fastnst import probes

    runs, photos = two_runs
    board = tmp_path / "board"
    args = [
        *map(str, runs),
        "--out",
        str(tmp_path / "report"),
        "--photos",
        str(photos),
        *SMALL_FAST,
        "--tensorboard",
        str(board),
        "--probe-size",
        "32",
    ]
    assert compare.main(args) == 0
    out, err = capsys.readouterr()
    assert f"tensorboard --logdir {board}" in out
    # the data folder of this test holds no probe photo: stand-ins, said once
    assert err.count("probe photos: 7 of 7 not found") == 1

    acc = EventAccumulator(str(board), size_guidance={"images": 0, "tensors": 0}).Reload()
    names = [name for name, _ in probes.PROBES]
    assert set(acc.Tags()["images"]) == {f"compare/{n}" for n in names} | {"compare/grid"}
    # each probe: the photo, then both runs, side by side (24 x 32 px cells, labels above)
    strip = acc.Images("compare/chicago")[0]
    assert strip.width == 3 * 32 + 4 * compare.PAD and strip.height > 24
    assert "compare/metrics/text_summary" in acc.Tags()["tensors"]  # the table, as text
    table = acc.Tensors("compare/metrics/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "| starry_night | folder | c8-16-32 r1 (IN) | 7 |" in table

    # one run per compared run: its evaluation as eval/ scalars (and hparams)
    folders = sorted(p.name for p in (board / "runs").iterdir())
    assert folders == [
        "0_starry_night_folder_c8-16-32_r1__IN",
        "1_the_scream_folder_c8-16-32_r1__BN",
    ]
    for folder in folders:
        run = EventAccumulator(str(board / "runs" / folder), size_guidance={"scalars": 0}).Reload()
        assert [e.step for e in run.Scalars("eval/total")] == [7]

    # not written over unasked; --overwrite replaces it (one events file, not two)
    assert compare.main(args) == 2
    assert "--tensorboard already holds a TensorBoard run" in capsys.readouterr().err
    assert compare.main([*args, "--overwrite"]) == 0
    assert len(list(board.glob("events.out.tfevents.*"))) == 1
    assert len(list((board / "runs" / folders[0]).glob("events.out.tfevents.*"))) == 1


def test_the_sample_table_in_the_docs_has_the_columns_the_script_writes():

    evaluation = {
        "style": "wave",
        "data": "imagenet_mini",
        "model": "johnson_half (IN)",
        "metrics": {},
        "settings": {"photos": [], "size": 128, "gatys_iterations": 50},
    }
    header = compare.markdown_table([evaluation]).splitlines()[0]
    docs = (REPO_ROOT / "docs" / "datasets.md").read_text()
    tables = [line for line in docs.splitlines() if line.startswith("| style | data | model |")]
    assert tables and all(line == header for line in tables), (tables, header)
