"""scripts/figures/blind_sheet.py: a lettered, shuffled sheet + its key, and the score means."""

from __future__ import annotations

import json

import pytest

from fastnst.errors import FastNSTError


@pytest.fixture(scope="module")
def blind_sheet():
    from fastnst.apps import blind_sheet  # scripts/figures/blind_sheet.py's logic

    return blind_sheet


def test_letters_run_past_z(blind_sheet):
    names = blind_sheet.letters(30)
    assert names[:3] == ["A", "B", "C"] and names[25:28] == ["Z", "AA", "AB"]
    assert len(set(names)) == 30


KEY = {
    "style": "udnie",
    "tiles": {
        "A": {"entry": "new", "photo": "chicago"},
        "B": {"entry": "photo", "photo": "chicago"},
        "C": {"entry": "old", "photo": "chicago"},
        "D": {"entry": "old", "photo": "dog"},
        "E": {"entry": "new", "photo": "dog"},
        "F": {"entry": "photo", "photo": "dog"},
    },
}


def test_score_means_per_network_over_raters_chicago_and_closeups(blind_sheet):
    rater1 = {"A": 4, "B": 1, "C": 2, "D": 1, "E": 5, "F": 1}
    rater2 = {"A": 3, "C": 3, "D": 2, "E": 4}  # B and F not rated: not counted
    table = blind_sheet.score_means(KEY, [rater1, rater2])
    assert table["new"] == {"mean": 4.0, "chicago": 3.5, "closeups": 4.5, "ones": 0, "n": 4}
    assert table["old"] == {"mean": 2.0, "chicago": 2.5, "closeups": 1.5, "ones": 1, "n": 4}
    assert table["photo"]["mean"] == 1.0 and table["photo"]["ones"] == 2


def test_score_mode_reads_text_and_json_ratings(blind_sheet, tmp_path, capsys):
    key = tmp_path / "key.json"
    key.write_text(json.dumps(KEY))
    (tmp_path / "r1.txt").write_text("# rater 1\nA 5\nb: 3\nC=1\nD 2\nE 4\nF 1\n")
    (tmp_path / "r2.json").write_text(json.dumps({"A": 4, "C": 2, "E": 3}))
    out = tmp_path / "means.json"
    argv = ["--score", str(key), str(tmp_path / "r1.txt"), str(tmp_path / "r2.json")]
    assert blind_sheet.main([*argv, "--json", str(out)]) == 0
    entries = json.loads(out.read_text())["entries"]
    assert entries["new"]["mean"] == pytest.approx((5 + 4 + 4 + 3) / 4)
    assert entries["old"]["chicago"] == pytest.approx(1.5)
    assert "new" in capsys.readouterr().out
    # an existing --json is kept unless --overwrite
    assert blind_sheet.main([*argv, "--json", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert blind_sheet.main([*argv, "--json", str(out), "--overwrite"]) == 0


def test_a_raters_remark_lines_are_skipped_but_a_bad_score_is_not(blind_sheet, tmp_path):
    path = tmp_path / "r.txt"
    path.write_text("A 4\nC 2\nRow A-C (skyline): C has a fine hatch on the towers.\n")
    assert blind_sheet.read_scores(path) == {"A": 4.0, "C": 2.0}
    path.write_text("A 4\nC two\n")
    with pytest.raises(FastNSTError, match="is not `<letter> <score>`"):
        blind_sheet.read_scores(path)


@pytest.mark.parametrize(
    "content, message",
    [("A 7\n", "outside 1-5"), ("A four\n", "is not `<letter> <score>`"), ('{"Q": 3}', "Q")],
)
def test_bad_ratings_are_one_line_errors(blind_sheet, tmp_path, capsys, content, message):
    key = tmp_path / "key.json"
    key.write_text(json.dumps(KEY))
    (tmp_path / "r.txt").write_text(content)
    assert blind_sheet.main(["--score", str(key), str(tmp_path / "r.txt")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_refuses_to_overwrite_a_sheet_without_overwrite(blind_sheet, tmp_path, capsys):
    (tmp_path / "sheet.jpg").write_bytes(b"old")
    argv = ["--style", "udnie", "--network", "a=udnie", "--out", str(tmp_path)]
    assert blind_sheet.main(argv) == 2
    assert "sheet.jpg" in capsys.readouterr().err
    assert (tmp_path / "sheet.jpg").read_bytes() == b"old"


def test_a_reserved_or_malformed_network_label_is_refused(blind_sheet, tmp_path, capsys):
    for spec in ("photo=udnie", "udnie"):
        argv = ["--style", "udnie", "--network", spec, "--out", str(tmp_path / "s")]
        assert blind_sheet.main(argv) == 2
    assert not (tmp_path / "s").exists()


@pytest.mark.data
def test_sheet_and_key_hold_every_tile_once_shuffled(blind_sheet, data_dir, tmp_path):
    from PIL import Image

    out = tmp_path / "sheet"
    argv = ["--style", "udnie", "--network", "bundled=udnie", "--out", str(out)]
    small = ["--size", "128", "--chicago-size", "128", "--tile", "64", "--scene-side", "96"]
    assert blind_sheet.main([*argv, *small]) == 0
    key = json.loads((out / "key.json").read_text())
    photos = key["photos"]
    assert photos[0] == "chicago" and len(photos) >= 5  # chicago + >= 4 close-ups
    tiles = key["tiles"]
    # per photo: the network and the photo; on chicago Johnson's published output too
    assert len(tiles) == 2 * len(photos) + 1
    for photo in photos:
        entries = sorted(t["entry"] for t in tiles.values() if t["photo"] == photo)
        expected = (
            ["bundled", "johnson2016", "photo"] if photo == "chicago" else ["bundled", "photo"]
        )
        assert entries == expected
    assert {"hatch", "scene_distance", "scene_ssim"} <= set(tiles["A"]["measures"])
    photo_tiles = [t for t in tiles.values() if t["entry"] == "photo"]
    assert all(t["measures"]["scene_distance"] < 1e-4 for t in photo_tiles)
    sheet = Image.open(out / "sheet.jpg")
    assert sheet.height > 64 * len(photos)  # the painting on top, then one row per photo
