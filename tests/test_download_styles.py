"""scripts/data/download_styles.py (fastnst.apps.download_styles), without the network: urlopen is
replaced or pointed at a dead proxy."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import urllib.error
from pathlib import Path

import pytest
from PIL import Image

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "data" / "download_styles.py"


@pytest.fixture
def ds():
    from fastnst.apps import download_styles

    return download_styles


def jpeg_bytes(color=(200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buf, "JPEG")
    return buf.getvalue()


class FakeResponse(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.fixture
def fake_web(ds, monkeypatch):
    """urlopen answering from a dict {url: bytes | Exception}; records the URLs asked for."""
    answers, asked = {}, []

    def urlopen(request, timeout=None):
        url = request.full_url
        asked.append(url)
        answer = answers.get(url, jpeg_bytes())
        if isinstance(answer, Exception):
            raise answer
        return FakeResponse(answer)

    monkeypatch.setattr(ds.urllib.request, "urlopen", urlopen)
    return answers, asked


def test_every_preset_has_a_wikimedia_url(ds):
    from importlib import resources

    shipped = resources.files("fastnst").joinpath("paintings")
    # what the script fetches is what the package ships (fastnst/paintings/*.jpg)
    assert set(ds.PUBLIC_DOMAIN) == {
        p.name[:-4] for p in shipped.iterdir() if p.name.endswith(".jpg")
    }
    for name, urls in ds.PUBLIC_DOMAIN.items():
        assert urls and all(
            u.startswith("https://upload.wikimedia.org/wikipedia/commons/") for u in urls
        ), name
    assert not set(ds.PUBLIC_DOMAIN) & set(ds.NOT_PUBLIC_DOMAIN)


def test_downloads_all_public_domain_by_default(ds, fake_web, tmp_path, capsys):
    assert ds.main(["--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"{n}.jpg" for n in ds.PUBLIC_DOMAIN
    )
    assert Image.open(tmp_path / "wave.jpg").size == (8, 8)
    assert "wave: saved" in capsys.readouterr().out


def test_existing_files_are_skipped(ds, fake_web, tmp_path, capsys):
    _, asked = fake_web
    (tmp_path / "wave.jpg").write_bytes(b"mine")
    assert ds.main(["wave", "udnie", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "wave.jpg").read_bytes() == b"mine"
    assert not any("Kanagawa" in u for u in asked) and any("Picabia" in u for u in asked)
    assert "already exists" in capsys.readouterr().out


def test_falls_back_to_the_next_url_on_http_errors_and_non_images(ds, fake_web, tmp_path):
    answers, asked = fake_web
    first, second = ds.PUBLIC_DOMAIN["the_scream"]
    answers[first] = urllib.error.HTTPError(first, 404, "Not Found", {}, None)
    assert ds.main(["the_scream", "--out", str(tmp_path)]) == 0
    assert asked == [first, second]
    # an HTML error page instead of an image is not saved
    answers[second] = b"<html>rate limited</html>"
    (tmp_path / "the_scream.jpg").unlink()
    assert ds.main(["the_scream", "--out", str(tmp_path)]) == 2
    assert not (tmp_path / "the_scream.jpg").exists()


def test_offline_is_one_line_and_exit_code_2(ds, fake_web, tmp_path, capsys):
    answers, _ = fake_web
    for urls in ds.PUBLIC_DOMAIN.values():
        for url in urls:
            answers[url] = urllib.error.URLError("[Errno -3] Temporary failure in name resolution")
    assert ds.main(["udnie", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        "\n" not in err
        and "udnie" in err
        and "offline" in err
        and str(tmp_path / "udnie.jpg") in err
    )
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_not_public_domain_tells_where_to_put_the_file(ds, fake_web, tmp_path, capsys):
    _, asked = fake_web
    assert ds.main(["la_muse", "--out", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "not public domain" in out and str(tmp_path / "la_muse.jpg") in out
    assert asked == []
    (tmp_path / "la_muse.jpg").write_bytes(jpeg_bytes())
    assert ds.main(["la_muse", "--out", str(tmp_path)]) == 0  # supplied: nothing missing


def test_unknown_name_is_a_usage_error(ds, capsys):
    with pytest.raises(SystemExit) as info:
        ds.main(["mona_lisa"])
    assert info.value.code == 2 and "mona_lisa" in capsys.readouterr().err


def test_default_out_dir_follows_fastnst_data(ds, monkeypatch, tmp_path):
    monkeypatch.setenv("FASTNST_DATA", str(tmp_path))
    assert ds.default_out_dir() == tmp_path / "styles"
    monkeypatch.delenv("FASTNST_DATA")
    assert ds.default_out_dir() == SCRIPT.parents[2] / "data" / "styles"


def _run(*args, **env):
    clean = {
        k: v
        for k, v in os.environ.items()
        if k.lower() not in ("no_proxy", "http_proxy", "https_proxy")
    }
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        env={**clean, **env},
        timeout=60,
    )


def test_help_runs_as_a_script():
    result = _run("--help")
    assert result.returncode == 0 and "--out" in result.stdout and "la_muse" in result.stdout


def test_offline_as_a_script_through_a_dead_proxy(tmp_path):
    # port 9 on localhost refuses the connection: no packet leaves the machine
    dead = "http://127.0.0.1:9"
    result = _run("wave", "--out", str(tmp_path), https_proxy=dead, HTTPS_PROXY=dead)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "wave" in result.stderr and "offline" in result.stderr
    assert list(tmp_path.iterdir()) == []
