"""Fuzzed files: real JPEG, PNG, WebP, GIF and MP4 files made here, then mutated with a seeded
RNG (cut at random offsets, bytes flipped, headers swapped between formats, a wrong extension)
and fed to the image loader, the video reader and stylize on a folder. Every case ends in a
result or a fastnst error naming the file, within a bounded time; never another exception.

FASTNST_FUZZ_CASES scales the number of cases; the `slow` test runs ten times as many."""

from __future__ import annotations

import io
import os
import random
import signal
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fastnst import cli
from fastnst.apps.stylize import stylize_folder
from fastnst.artifacts import save_exported
from fastnst.errors import FastNSTError
from fastnst.images import load_image
from fastnst.stylize import Stylizer
from fastnst.transformer import TransformerNet
from fastnst.video import stylize_video, video_info

SECONDS_PER_FILE = 10  # generous on a loaded 2-core machine; a hang is minutes
IMAGE_FORMATS = {"jpg": "JPEG", "png": "PNG", "webp": "WEBP", "gif": "GIF"}
CASES = int(os.environ.get("FASTNST_FUZZ_CASES", "240"))


def _picture(w=48, h=32) -> Image.Image:
    yy, xx = np.mgrid[0:h, 0:w]
    noise = np.random.default_rng(0).integers(0, 40, (h, w, 1))
    return Image.fromarray(
        np.stack([xx * 5, yy * 7, (xx + yy) * 3], -1).astype(np.uint8) + noise.astype(np.uint8)
    )


def _video_bytes(tmp: Path) -> bytes:
    import av

    path = tmp / "seed.mp4"
    with av.open(str(path), "w", options={"movflags": "faststart"}) as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 24, "yuv420p"
        stream.codec_context.gop_size = 3
        for i in range(6):
            frame = np.asarray(_picture(32, 24)).copy()
            frame[:, :, 0] += 20 * i
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(stream.encode(None))
    return path.read_bytes()


@pytest.fixture(scope="module")
def originals(tmp_path_factory) -> dict[str, bytes]:
    """{extension: bytes of a valid file}."""
    files = {}
    for ext, fmt in IMAGE_FORMATS.items():
        buf = io.BytesIO()
        _picture().save(buf, fmt)
        files[ext] = buf.getvalue()
    files["mp4"] = _video_bytes(tmp_path_factory.mktemp("fuzz_video"))
    return files


def mutate(data: bytes, originals: dict[str, bytes], rng: random.Random) -> tuple[str, bytes]:
    """(what was done, mutated bytes)."""
    kind = rng.choice(["truncate", "flip", "swap_header", "truncate+flip"])
    data = bytearray(data)
    done = []
    if "truncate" in kind:
        cut = rng.randrange(0, len(data))
        data = data[:cut]
        done.append(f"cut@{cut}")
    if "flip" in kind and data:
        for _ in range(rng.choice([1, 2, 8, 64])):
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
        done.append("flip")
    if kind == "swap_header":
        other = originals[rng.choice(sorted(originals))]
        n = rng.choice([4, 16, 64, 512])
        data[:n] = other[:n]
        done.append(f"header{n}")
    return "+".join(done), bytes(data)


def fuzz_cases(originals, n: int, seed: int, folder: Path) -> list[Path]:
    """n mutated files in `folder`, each named after its case (unique stems); about one in six
    keeps its bytes but gets another format's extension."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        source = rng.choice(sorted(originals))
        ext = source
        if rng.random() < 1 / 6:
            ext = rng.choice([e for e in originals if e != source])
            what, data = "wrong_ext", originals[source]
        else:
            what, data = mutate(originals[source], originals, rng)
        path = folder / f"case{i:04d}_{source}_{what.replace('@', '_')}.{ext}"
        path.write_bytes(data)
        paths.append(path)
    return paths


def intact(path: Path, video: bool = False) -> bool:
    """A case whose bytes are a valid image under another image extension, or (video) the valid
    MP4 under any name: files are judged by content, so it must succeed (a reader that refused
    every file, naming it, would fail)."""
    if "_wrong_ext." not in path.name:
        return False
    source = path.name.split("_")[1]
    return (
        source == "mp4" if video else source in IMAGE_FORMATS and path.suffix[1:] in IMAGE_FORMATS
    )


class Hang(Exception):
    pass


@contextmanager
def time_limit(seconds: float, what: str):
    """Fail (instead of hanging the suite) when the block runs longer than `seconds`."""

    def alarm(signum, frame):
        raise Hang(f"{what}: still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="module")
def stylizer(tmp_path_factory):
    path = save_exported(
        tmp_path_factory.mktemp("fuzz_model") / "model.pt",
        TransformerNet(channels=(8, 16, 32), num_residual=1),
    )
    return Stylizer.load(path, device="cpu")


def _check_image_loader(paths):
    for path in paths:
        with time_limit(SECONDS_PER_FILE, path.name):
            try:
                image = load_image(path)
            except FastNSTError as e:
                assert path.name in str(e) and "\n" not in str(e), str(e)
                assert not intact(path), f"an intact image was refused: {e}"
                continue
        assert image.shape[:2] == (1, 3) and 0 <= float(image.min()) <= float(image.max()) <= 1


def _check_video_reader(paths, stylizer, out: Path):
    for i, path in enumerate(paths):
        with time_limit(SECONDS_PER_FILE, path.name):
            try:
                video_info(path)
                frames = stylize_video(stylizer, path, out / f"{i}.mp4", progress=False)
            except FastNSTError as e:
                assert path.name in str(e) and "\n" not in str(e), str(e)
                assert not intact(path, video=True), f"an intact video was refused: {e}"
                continue
        assert frames > 0 and video_info(out / f"{i}.mp4")["frames"] == frames


def _check_folder(folder: Path, paths, stylizer, out: Path):
    with time_limit(SECONDS_PER_FILE * len(paths), str(folder)):
        written, failures = stylize_folder(stylizer, folder, out, progress=False)
    images = [p for p in paths if p.suffix != ".mp4"]
    assert written + len(failures) == len(images)
    failed = {p.name for p in images if any(p.name in f for f in failures)}
    assert len(failed) == len(failures), "a failure message does not name its file"
    assert not {p.name for p in images if intact(p)} & failed, "an intact image was refused"
    for p in images:
        assert (p.name in failed) != (
            out / (p.stem + (p.suffix if p.suffix != ".gif" else ".png"))
        ).exists()


def run_fuzz(originals, stylizer, tmp_path, n: int, seed: int, max_videos: int | None = None):
    """All cases through the image loader and stylize on a folder; the .mp4 ones and the MP4
    bytes under another name (at most max_videos: each starts an encoder) through the video reader."""
    paths = fuzz_cases(originals, n, seed, tmp_path / "cases")
    videos = [p for p in paths if p.suffix == ".mp4" or "_mp4_" in p.name][:max_videos]
    assert any(intact(p) for p in paths) and any(
        intact(p, video=True) for p in videos
    )  # successes required
    start = time.monotonic()
    _check_image_loader(paths)
    (tmp_path / "videos").mkdir()
    _check_video_reader(videos, stylizer, tmp_path / "videos")
    _check_folder(tmp_path / "cases", paths, stylizer, tmp_path / "out")
    return len(paths), len(videos), time.monotonic() - start


def test_fuzzed_files_give_a_result_or_an_error_naming_the_file(originals, stylizer, tmp_path):
    n, videos, seconds = run_fuzz(
        originals, stylizer, tmp_path, CASES, seed=12, max_videos=CASES // 10
    )
    print(f"{n} fuzzed files ({videos} through the video reader) in {seconds:.1f} s")


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fuzzed_files_many_more(originals, stylizer, tmp_path, seed):
    run_fuzz(originals, stylizer, tmp_path, CASES * 4, seed=100 + seed)


def test_fuzzed_folder_through_the_cli(originals, tmp_path, run_entry, stylizer):  # noqa: F811
    paths = fuzz_cases(originals, 30, 7, tmp_path / "cases")
    model = save_exported(
        tmp_path / "model.pt", TransformerNet(channels=(8, 16, 32), num_residual=1)
    )
    code, err = run_entry(
        cli.stylize_main,
        f"model={model}",
        f"input={tmp_path / 'cases'}",
        f"output={tmp_path / 'out'}",
    )
    assert code in (0, 2) and "Traceback" not in err, err
    reported = [p for p in paths if p.suffix != ".mp4" and p.name in err]
    written = (
        {p.name for p in (tmp_path / "out").iterdir()} if (tmp_path / "out").exists() else set()
    )
    must_work = [p for p in paths if intact(p)]
    assert must_work and not set(must_work) & set(reported), err
    assert len(reported) + len(written) == len([p for p in paths if p.suffix != ".mp4"])
    assert (code == 2) == bool(reported)


# -- fuzzed model files: valid exports (model.pt, a checkpoint, ONNX) with random values in random
# fields, and their bytes cut or flipped; each opens or ends in one line naming the file

MODEL_CASES = max(20, CASES // 4)


def _random_value(rng: random.Random, depth: int = 0):
    import torch

    kinds = ["none", "bool", "int", "float", "str", "bytes", "list", "dict", "tensor"]
    kind = rng.choice(kinds if depth < 4 else kinds[:6])
    if kind == "none":
        return None
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "int":
        return rng.choice([0, -1, 1, 3, 2**31, 10**30, -(10**30)])
    if kind == "float":
        return rng.choice([float("nan"), float("inf"), -0.0, 1e-300, 1e300, 0.5, 2.0])
    if kind == "str":
        return rng.choice(["", "2", "instance", "x" * 500, "nan"])
    if kind == "bytes":
        return bytes(rng.randrange(256) for _ in range(rng.randrange(8)))
    if kind == "list":
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    if kind == "dict":
        return {str(i): _random_value(rng, depth + 1) for i in range(rng.randrange(4))}
    return torch.randn(rng.choice([(1,), (2, 3), (0,)]))


def _model_payloads(seed: int):
    import torch

    torch.manual_seed(seed)
    net = TransformerNet(channels=(8, 16, 16), num_residual=1)
    exported = {
        "format": "fastnst.transformer",
        "version": 1,
        "config": dict(net.config),
        "state_dict": dict(net.state_dict()),
        "meta": {"stroke_scale": 2.0, "global_step": 5},
    }
    checkpoint = {
        "fastnst_model_config": dict(net.config),
        "state_dict": {f"net.{k}": v for k, v in net.state_dict().items()},
        "epoch": 0,
        "global_step": 1,
    }
    return net, {"exported": exported, "checkpoint": checkpoint}


def _set_random_field(payload: dict, rng: random.Random) -> str:
    """Replace one field (top level, or one level down) with a random value; returns its name."""
    key = rng.choice(sorted(payload))
    if isinstance(payload[key], dict) and payload[key] and rng.random() < 0.6:
        sub = rng.choice(sorted(payload[key]))
        payload[key][sub] = _random_value(rng)
        return f"{key}.{sub}"
    payload[key] = _random_value(rng)
    return key


def test_fuzzed_model_files_open_or_fail_in_one_line(tmp_path):
    import torch

    rng = random.Random(33)
    _, payloads = _model_payloads(0)
    seen = {"opened": 0, "refused": 0}
    for i in range(MODEL_CASES):
        kind = rng.choice(sorted(payloads))
        _, fresh = _model_payloads(0)
        payload = fresh[kind]
        fields = [_set_random_field(payload, rng) for _ in range(rng.choice([1, 1, 2]))]
        path = tmp_path / f"case{i}_{kind}.pt"
        torch.save(payload, path)
        if rng.random() < 0.25:  # and its bytes damaged
            data = bytearray(path.read_bytes())
            for _ in range(rng.randrange(1, 5)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            path.write_bytes(bytes(data[: rng.randrange(len(data) // 2, len(data) + 1)]))
        what = f"{path.name} ({kind}: {', '.join(fields)})"
        with time_limit(SECONDS_PER_FILE, what):
            try:
                Stylizer.load(path, backend="torch", precision="fp32")(torch.rand(1, 3, 20, 20))
                seen["opened"] += 1
            except FastNSTError as e:
                message = str(e)
                assert "\n" not in message and path.name in message, f"{what}: {message}"
                seen["refused"] += 1
    assert seen["refused"] > MODEL_CASES // 2, seen


def test_fuzzed_onnx_metadata_opens_or_fails_in_one_line(tmp_path):
    """The JSON an ONNX export stores is read back as untrusted too."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    import json

    import torch

    from fastnst.export import export_model

    torch.manual_seed(0)
    source = export_model(
        TransformerNet(channels=(8, 16, 16), num_residual=1), tmp_path / "m.onnx", "onnx"
    )
    rng = random.Random(5)
    for i in range(20):
        model = onnx.load(str(source))
        prop = next(p for p in model.metadata_props if p.key == "fastnst")
        saved = json.loads(prop.value)
        choice = rng.randrange(3)
        if choice == 0:
            prop.value = rng.choice(["", "{", "[]", "null", '"x"', "1e999"])
        else:
            target = saved["meta"] if choice == 1 else saved["config"]
            target[rng.choice(["stroke_scale", "styles", "global_step"])] = json.loads(
                json.dumps(_random_value(rng, 2), default=lambda o: None)
            )
            prop.value = json.dumps(saved)
        path = tmp_path / f"case{i}.onnx"
        onnx.save(model, str(path))
        with time_limit(SECONDS_PER_FILE, path.name):
            try:
                Stylizer.load(path)(torch.rand(1, 3, 20, 20))
            except FastNSTError as e:
                assert "\n" not in str(e) and path.name in str(e), str(e)
