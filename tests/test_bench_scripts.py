"""The benchmark scripts' child programs (code run in a fresh interpreter, out of reach of the
linters and of the imports the rest of the suite checks) still run against the current package."""

from __future__ import annotations

import subprocess
import sys

import pytest

from fastnst.artifacts import save_exported
from fastnst.transformer import TransformerNet
from tests.helpers import REPO

sys.path.insert(0, str(REPO / "scripts"))

import bench_inference  # noqa: E402


@pytest.mark.parametrize("child", ["EAGER_CHILD", "MEMORY_CHILD"])
def test_bench_inference_children_run(child, tmp_path):
    model = save_exported(tmp_path / "m.pt", TransformerNet(channels=(8, 16, 32), num_residual=1))
    args = [str(model), "24", "32", "1"] if child == "EAGER_CHILD" else [str(model), "24", "32", "none", "auto"]
    proc = subprocess.run([sys.executable, "-c", getattr(bench_inference, child), *args],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert float(proc.stdout.split()[-1]) > 0
