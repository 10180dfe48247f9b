"""Shared by the web app's tests: tiny networks, bad uploads, and the app as a subprocess."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import time
import urllib.request
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def tiny_models(folder: Path, names=("tiny_a", "tiny_b")) -> Path:
    """A models folder of random-init networks, small enough for a test: one loose .pt and one
    run directory (model.pt inside), so both kinds are offered."""
    import torch

    from fastnst.transformer import TransformerNet, save_exported

    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        torch.manual_seed(i)
        net = TransformerNet(channels=[8, 16, 16], num_residual=1)
        path = folder / f"{name}.pt" if i == 0 else folder / name / "model.pt"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_exported(path, net)
    return folder


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bad_uploads(folder: Path) -> dict[str, Path]:
    """{what: file} of the uploads the app must refuse with a one-line message."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    files["not_an_image"] = folder / "notes.png"
    files["not_an_image"].write_text("this is not a picture\n")
    photo = folder / "whole.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (96, 128, 3), dtype=np.uint8)).save(photo)
    files["truncated"] = folder / "truncated.jpg"
    files["truncated"].write_bytes(photo.read_bytes()[: photo.stat().st_size // 2])
    # a 30000 x 30000 px PNG header in a few bytes: decoding it would need 2.7 GB
    ihdr = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)
    files["bomb"] = folder / "bomb.png"
    files["bomb"].write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr)
                              + _png_chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + _png_chunk(b"IEND", b""))
    files["panorama"] = folder / "panorama.png"
    Image.new("L", (20000, 50), 128).save(files["panorama"])
    return files


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(*overrides: str, timeout: float = 120.0):
    """`python app.py port=<free> <overrides>` in a subprocess; returns (process, url) once the
    page answers. The caller stops it (stop_app)."""
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""),
               GRADIO_ANALYTICS_ENABLED="False")
    proc = subprocess.Popen([sys.executable, str(REPO / "app.py"), f"port={port}", *overrides],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the app exited with {proc.returncode}: {proc.stdout.read()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.3)
    stop_app(proc)
    raise RuntimeError(f"the app did not answer on {url} within {timeout:.0f} s")


def stop_app(proc) -> str:
    proc.terminate()
    try:
        out, _ = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out or ""
