"""bundle_network.py --judge (fastnst.zoo.meta.stamp_judge): the style judge's numbers go into
the bundled files (weights kept) and `styles=list` prints them instead of the Gram loss's style
ratio."""

from __future__ import annotations

import json
import shutil

import torch

from fastnst import zoo
from fastnst.zoo.meta import judge_quality, stamp_judge


def judge_rows(style: str, ours: float, johnson: float) -> list[dict]:
    return [
        {"style": style, "row": row, "style_swd": value, "judged_at": 512}
        for row, value in (("photo", 0.6), ("bundled (today)", ours), ("Johnson 2016", johnson))
    ]


def test_judge_numbers_are_stored_and_listed_weights_unchanged(tmp_path, monkeypatch, capsys):
    zoo_dir = tmp_path / "zoo"
    zoo_dir.mkdir()
    shutil.copy(zoo.ZOO_DIR / "wave.pt", zoo_dir / "wave.pt")
    monkeypatch.setattr(zoo, "ZOO_DIR", zoo_dir)
    before = torch.load(zoo_dir / "wave.pt", weights_only=True)
    table = tmp_path / "table.json"
    table.write_text(
        json.dumps({"rows": judge_rows("wave", 0.41, 0.35) + judge_rows("udnie", 0.5, 0.3)})
    )

    rows = json.loads(table.read_text())["rows"]
    assert stamp_judge(rows, zoo.bundled_styles(), "palette only")

    after = torch.load(zoo_dir / "wave.pt", weights_only=True)
    judge = after["meta"]["quality"]["judge"]
    assert (judge["style_swd"], judge["johnson_style_swd"], judge["photo_style_swd"]) == (
        0.41,
        0.35,
        0.6,
    )
    assert after["meta"]["status"] == "palette only"
    assert (
        after["meta"]["quality"]["edge_ssim"] == before["meta"]["quality"]["edge_ssim"]
    )  # the rest kept
    weights = before["state_dict"]
    assert weights and all(
        torch.equal(weights[k], after["state_dict"][k]) for k in weights
    )  # untouched
    assert after["config"] == before["config"]
    listing = zoo.listing()
    assert "style judge on chicago at 512 px: 0.410, Johnson 2016 0.350" in listing
    assert "style 0." not in listing  # the Gram loss's style ratio is no longer printed


def test_judge_rows_without_a_johnson_output_leave_the_file_alone(tmp_path):
    rows = [r for r in judge_rows("wave", 0.41, 0.35) if r["row"] != "Johnson 2016"]
    assert judge_quality(rows, "wave") is None
    assert judge_quality(judge_rows("wave", 0.41, 0.35), "starry_night") is None


def test_a_multi_style_network_gets_the_judge_of_each_of_its_styles(tmp_path, monkeypatch):
    from fastnst.artifacts import save_exported
    from fastnst.transformer import TransformerNet

    zoo_dir = tmp_path / "zoo"
    zoo_dir.mkdir()
    save_exported(
        zoo_dir / "duo.pt",
        TransformerNet(channels=[4, 8, 8], num_residual=1, styles=["wave", "udnie"]),
    )
    monkeypatch.setattr(zoo, "ZOO_DIR", zoo_dir)
    rows = [
        {
            **r,
            "row": "duo" if r["row"] == "bundled (today)" else r["row"],
        }  # rows labelled by network name
        for r in judge_rows("wave", 0.41, 0.35) + judge_rows("udnie", 0.29, 0.28)
    ]
    table = tmp_path / "table.json"
    table.write_text(json.dumps({"rows": rows}))
    assert stamp_judge(json.loads(table.read_text())["rows"], zoo.bundled_styles())
    judge = torch.load(zoo_dir / "duo.pt", weights_only=True)["meta"]["quality"]["judge"]
    assert (judge["wave"]["style_swd"], judge["udnie"]["johnson_style_swd"]) == (0.41, 0.28)
    assert "wave 0.410 / 0.350, udnie 0.290 / 0.280" in zoo.listing()
