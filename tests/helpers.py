"""Helpers the test modules share (plain functions; the fixtures are in conftest.py)."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

REPO = Path(__file__).resolve().parents[1]
# the styles with a bundled single network, in six_styles' order (the six it holds)
SHIPPED = (
    "starry_night",
    "the_scream",
    "wave",
    "udnie",
    "composition_vii",
    "shipwreck_of_the_minotaur",
)


def compose_config(config_name: str | None, *overrides: str, config_dir=None, **kwargs):
    """The config `python <entry>.py <overrides>` would see (fastnst.config.compose; config_dir:
    conf/ by default, conf/inference for stylize / export / evaluate)."""
    from fastnst.config import CONFIG_DIR, compose

    return compose(config_name, overrides, config_dir or CONFIG_DIR, **kwargs)


def exit_code(fn, cfg) -> int:
    """The exit code of an entry point's plain function under the CLI's error handling."""
    from fastnst.cli import run_reporting_errors

    try:
        run_reporting_errors(fn, cfg)
    except SystemExit as e:
        return int(e.code)
    return 0


def run_main(main, args, monkeypatch, capsys) -> tuple[int, str, str]:
    """An entry point's main() in-process with `args` as its command line: (exit code, stdout,
    stderr)."""
    monkeypatch.setattr(sys, "argv", ["prog", *map(str, args)])
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        main()
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        root.handlers[:] = handlers  # Hydra points the root logger at the captured streams
        root.setLevel(level)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def make_image(path: Path, size=(64, 48), seed: int = 0, mode: str = "RGB") -> Path:
    """Write a smooth random colour image (gradients + blobs, so VGG sees structure)."""
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    channels = []
    for _ in range(3):
        a, b, c = rng.uniform(-6, 6, 3)
        channels.append(0.5 + 0.5 * np.sin(a * xx + b * yy + c))
    arr = (np.stack(channels, -1) * 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, "RGB").convert(mode).save(path)
    return path


def assert_user_error(code, err, name):
    assert code == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert name in lines[0], lines[0]


def tiny(folder, *extra, steps=10):
    """Overrides for a fast CPU run: 32 px crops of a folder of synthetic photos, small net."""
    return [
        "data=folder",
        f"data.root={folder}",
        "data.image_size=32",
        "data.batch_size=2",
        "data.num_workers=0",
        "data.val_size=2",
        "model=johnson_half",
        "style.size=48",
        "trainer.accelerator=cpu",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        f"trainer.max_steps={steps}",
        "trainer.log_every_n_steps=1",
        "seed=0",
        *extra,
    ]


def train_tiny(root: Path, *extra: str, run_dir: Path, steps: int = 2):
    """A real `steps`-step run (`tiny` overrides plus `extra`) on six synthetic photos under
    `root`, its painting in root/data/styles (FASTNST_DATA points there while it trains);
    returns the run directory."""
    import pytest

    from fastnst.train import train

    make_image(root / "data" / "styles" / "starry_night.jpg", size=(48, 48), seed=7)
    for i in range(6):
        make_image(root / "photos" / f"{i}.png", size=(40, 40), seed=100 + i)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FASTNST_DATA", str(root / "data"))
        cfg = compose_config(
            "train", *tiny(root / "photos", *extra, steps=steps), f"run_dir={run_dir}"
        )
        return train(cfg)["run_dir"]


def scalars(run_dir: Path, tag: str) -> dict[int, float]:
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "images": 0}).Reload()
    return {e.step: e.value for e in acc.Scalars(tag)}


def wait_for(path: Path, proc, timeout=240, min_step=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            if min_step is None:
                return
            try:
                if torch.load(path, weights_only=False)["global_step"] >= min_step:
                    return
            except Exception:
                pass  # between rename steps
        if proc.poll() is not None:
            raise AssertionError(
                f"training exited early ({proc.returncode}): {proc.stderr.read()[-2000:]}"
            )
        time.sleep(0.2)
    raise AssertionError(f"{path} did not appear in {timeout} s")


def write_clip(path, frames=10, size=(64, 48), rate=12, audio=False):
    """A tiny moving-gradient clip (optionally with a sine tone) written with PyAV."""
    w, h = size
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=rate)
        video.width, video.height, video.pix_fmt = w, h, "yuv420p"
        sound = out.add_stream("aac", rate=16000) if audio else None
        for i in range(frames):
            yy, xx = np.mgrid[0:h, 0:w]
            arr = np.stack(
                [(xx * 4 + i * 10) % 256, (yy * 5) % 256, np.full_like(xx, 40 * (i % 6))], -1
            )
            out.mux(video.encode(av.VideoFrame.from_ndarray(arr.astype(np.uint8), format="rgb24")))
        out.mux(video.encode(None))
        if sound is not None:
            samples = int(16000 * frames / rate)
            tone = (0.3 * np.sin(np.arange(samples) * 2 * np.pi * 440 / 16000)).astype(np.float32)[
                None
            ]
            for start in range(0, samples, 1024):
                frame = av.AudioFrame.from_ndarray(
                    tone[:, start : start + 1024], format="fltp", layout="mono"
                )
                frame.sample_rate, frame.pts = 16000, start
                out.mux(sound.encode(frame))
            out.mux(sound.encode(None))
    return path


def texture(h: int, w: int, seed: int = 0) -> torch.Tensor:
    """(1, 3, h, w) in [0, 1]: blurred noise over a few sinusoids, textured at every scale DIS uses."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.rand(1, 3, h // 4, w // 4, generator=g)
    base = F.interpolate(noise, size=(h, w), mode="bicubic", align_corners=False)
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    waves = 0.15 * torch.sin(xx / 3.0 + yy / 5.0) + 0.1 * torch.sin(yy / 2.3)
    return (0.2 + 0.6 * base + waves).clamp(0, 1)


def shifted_frames(n: int = 5, size: int = 64, step: int = 2, seed: int = 0) -> list[torch.Tensor]:
    """Frames of a camera moving `step` px right per frame over a larger textured image."""
    big = texture(size + 8, size + n * step + 8, seed)
    return [
        big[..., 4 : 4 + size, 4 + i * step : 4 + i * step + size].contiguous() for i in range(n)
    ]


def run_stylize(*overrides) -> int:
    """The stylize CLI logic in-process (composed config, errors -> exit code)."""
    from fastnst.apps.stylize import stylize_cli
    from fastnst.cli import INFERENCE_CONFIG_DIR, run_reporting_errors

    cfg = compose_config("stylize", *overrides, config_dir=INFERENCE_CONFIG_DIR)
    try:
        run_reporting_errors(stylize_cli, cfg)
    except SystemExit as e:
        return int(e.code)
    return 0


class PoisonBatch(pl.Callback):
    """NaN injection: the photos of one step become NaN."""

    def __init__(self, step):
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            batch["image"].fill_(float("nan"))


class CodeRunningPickle:
    """Unpickling it creates `marker`: stands in for a shell command hidden in a model file
    (the `marker` fixture, tests/conftest.py, names a file that must never appear)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))
