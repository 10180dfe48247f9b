"""Per-machine choice of the CPU inference path (accel/autotune.py, runners.AutoRunner), its cache
as untrusted input, and the bf16 forward (accel/bf16.py). Timings come from a fake clock: the rules
are tested, not the speed."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest
import torch

from fastnst import Stylizer
from fastnst.accel import autotune, bf16, cpu
from fastnst.formats import load_exported, save_exported
from fastnst.runners import (
    AutoRunner,
    Bf16Runner,
    TorchRunner,
    onnxruntime_available,
)
from fastnst.transformer import TransformerNet
from fastnst.zoo import bundled_styles

AVX2 = ("AMD EPYC 7B13", frozenset({"avx2", "fma"}))
AMX = (
    "Intel(R) Xeon(R) Platinum 8481C",
    frozenset({"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}),
)
SIDE = 128  # a tuned size class (the 128 px class, timed at 96x96)


@pytest.fixture
def tuning(tmp_path, monkeypatch):
    """Autotuning on (the suite turns it off), its cache in tmp_path, the CPU never 'busy', a
    fake AVX2 CPU; returns the cache file."""
    monkeypatch.setenv("FASTNST_AUTOTUNE", "1")
    monkeypatch.setenv("FASTNST_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(autotune, "busy", lambda: None)
    monkeypatch.setattr(cpu, "cpu_info", lambda: AVX2)
    monkeypatch.setattr(autotune, "_measured", set())
    return tmp_path / "cache" / "autotune.json"


@pytest.fixture
def model_file(tmp_path) -> Path:
    torch.manual_seed(0)
    return save_exported(
        tmp_path / "model.pt", TransformerNet(channels=(8, 16, 32), num_residual=2)
    )


class FakeClock:
    """autotune's clock, advanced only by the paths: path name -> seconds per call."""

    def __init__(self, monkeypatch, costs: dict[str, float]):
        self.now, self.costs = 0.0, costs
        monkeypatch.setattr(autotune, "_clock", lambda: self.now)
        original = AutoRunner.candidates

        def candidates(runner):
            paths, skipped = original(runner)
            return {name: self._slowed(name, make) for name, make in paths.items()}, skipped

        monkeypatch.setattr(AutoRunner, "candidates", candidates)

    def _slowed(self, name, make):
        def build():
            fn = make()

            def run(*args):
                self.now += self.costs.get(name, 1.0)
                return fn(*args)

            return run

        return build


def _choice(stylizer: Stylizer) -> autotune.Choice:
    (choice,) = stylizer.runner.choices.values()
    return choice


# -- the rule ---------------------------------------------------------------------------------


def _paths(
    costs: dict[str, float], clock: list, lossy: set = frozenset(), at_16: dict | None = None
):
    """Fake paths: each call advances the clock by its cost (`at_16`: costs on 16x16 inputs)."""

    def make(name):
        def run(x):
            clock[0] += (at_16 or costs)[name] if x.shape[-1] == 16 else costs[name]
            return x + 0.1 if name in lossy else x.clone()

        return lambda: run

    return {name: make(name) for name in costs}


@pytest.mark.parametrize(
    ("costs", "lossy", "expected"),
    [
        (
            {"accel": 10.0, "onednn": 6.0, "channels_last": 8.0},
            set(),
            "onednn",
        ),  # clearly faster: taken
        (
            {"accel": 10.0, "onednn": 9.7},
            set(),
            "accel",
        ),  # 3% faster: noise, the default path stays
        (
            {"accel": 10.0, "bf16": 2.0, "onednn": 8.0},
            {"bf16"},
            "onednn",
        ),  # fastest but below 40 dB
        ({"accel": 10.0, "onednn": 30.0}, set(), "accel"),
    ],
)
def test_measure_takes_the_fastest_path_that_is_clearly_faster_and_accurate(
    monkeypatch, costs, lossy, expected
):
    clock = [0.0]
    monkeypatch.setattr(autotune, "_clock", lambda: clock[0])
    choice = autotune.measure(_paths(costs, clock, lossy), torch.rand(1, 3, 8, 8))
    assert choice.path == expected
    for name in lossy:
        assert "PSNR" in choice.skipped[name] and name not in choice.ms
    if costs.get("onednn") == 30.0:  # 3x slower at warm-up: not timed further
        assert "slower at warm-up" in choice.skipped["onednn"]


def test_a_path_faster_only_at_the_reduced_size_is_not_chosen(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(autotune, "_clock", lambda: clock[0])
    costs = {"accel": 10.0, "onednn": 6.0}
    confirm = torch.rand(1, 3, 16, 16)
    kept = autotune.measure(
        _paths(costs, clock, at_16={"accel": 40.0, "onednn": 39.0}),
        torch.rand(1, 3, 8, 8),
        confirm=confirm,
    )
    assert kept.path == "accel" and "1.03x at 16x16" in kept.reason
    taken = autotune.measure(
        _paths(costs, clock, at_16={"accel": 40.0, "onednn": 20.0}),
        torch.rand(1, 3, 8, 8),
        confirm=confirm,
    )
    assert taken.path == "onednn" and "2.00x at 16x16" in taken.reason


def test_size_classes_and_timing_sizes():
    assert autotune.size_class(64, 48) is None  # too small to tune
    assert autotune.size_class(512, 512) == (512, (384, 384))
    assert autotune.size_class(400, 600)[0] == 512
    assert autotune.size_class(1080, 1920) == (1024, (768, 768))
    assert autotune.size_class(2160, 3840) == (2048, (768, 768))


def test_cache_location(monkeypatch, tmp_path):
    monkeypatch.delenv("FASTNST_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert autotune.cache_file() == tmp_path / "xdg" / "fastnst" / "autotune.json"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert autotune.cache_file() == tmp_path / "home" / ".cache" / "fastnst" / "autotune.json"
    monkeypatch.setenv("FASTNST_CACHE_DIR", str(tmp_path / "elsewhere"))
    assert autotune.cache_file() == tmp_path / "elsewhere" / "autotune.json"


# -- the runner: cached, reused, overridable ----------------------------------------------------


def test_choice_is_measured_once_cached_reused_and_logged_only_when_measured(
    tuning, model_file, monkeypatch, capsys
):
    FakeClock(
        monkeypatch, {"accel": 10.0, "onednn": 20.0, "channels_last": 5.0, "onnxruntime": 12.0}
    )
    x = torch.rand(1, 3, SIDE, SIDE)
    s = Stylizer.load(model_file, device="cpu")
    assert isinstance(s.runner, AutoRunner)
    y = s(x)
    assert s.runner.path == "channels_last" and _choice(s).path == "channels_last"
    with torch.no_grad():
        expected = load_exported(model_file)[0](x)
    assert torch.allclose(y, expected, atol=1e-4) and y.is_contiguous()
    saved = json.loads(tuning.read_text())["choices"]
    ((key, entry),) = saved.items()
    assert entry["path"] == "channels_last" and entry["timed_at"] == [96, 96]
    assert "AMD EPYC 7B13 [avx2]" in key and "c8-16-32 r2 instance" in key and "| 128 px |" in key
    s(x)
    log = capsys.readouterr().err
    assert log.count("fastnst: CPU path for c8-16-32 r2 instance at ~128 px") == 1
    assert "channels_last (2.00x the default path" in log and "measured in" in log
    assert len(log.strip().splitlines()) == 1 and len(log) < 200  # one short line

    # a new process (a new runner) reads the cached choice back instead of measuring
    monkeypatch.setattr(
        autotune, "measure", lambda *a, **k: pytest.fail("measured again despite the cache")
    )
    monkeypatch.setattr(autotune, "_measured", set())
    again = Stylizer.load(model_file, device="cpu")
    again(torch.rand(1, 3, SIDE + 20, SIDE - 10))  # the same size class
    assert again.runner.path == "channels_last" and _choice(again).cached
    assert "CPU path" not in capsys.readouterr().err  # a cached choice is silent

    # the cache is one per machine: another CPU measures its own
    monkeypatch.setattr(cpu, "cpu_info", lambda: ("Another CPU", frozenset({"avx2"})))
    with pytest.raises(pytest.fail.Exception, match="measured again"):
        Stylizer.load(model_file, device="cpu")(x)


def test_explicit_backend_and_precision_override_the_choice(tuning, model_file, monkeypatch):
    tuning.parent.mkdir(parents=True)
    FakeClock(monkeypatch, {"accel": 10.0, "onednn": 5.0})
    x = torch.rand(1, 3, SIDE, SIDE)
    assert Stylizer.load(model_file, device="cpu").runner(x) is not None
    assert tuning.exists()
    monkeypatch.setattr(
        autotune, "choose", lambda *a, **k: pytest.fail("an explicit backend measured")
    )
    plain = Stylizer.load(model_file, device="cpu", backend="torch")
    assert type(plain.runner) is TorchRunner and plain.backend == "torch"
    plain(x)
    as_bf16 = Stylizer.load(model_file, device="cpu", precision="bf16")
    assert isinstance(as_bf16.runner, Bf16Runner)
    assert as_bf16(x).dtype == torch.float32
    if onnxruntime_available():
        assert (
            Stylizer.load(model_file, device="cpu", backend="onnxruntime").backend == "onnxruntime"
        )
    monkeypatch.setenv("FASTNST_AUTOTUNE", "0")  # autotuning off: the default path, untimed
    off = Stylizer.load(model_file, device="cpu")
    off(x)
    assert off.runner.path == "accel" and not off.runner.choices


def test_precision_fp32_offers_no_bf16_and_a_small_input_is_not_tuned(
    tuning, model_file, monkeypatch
):
    monkeypatch.setattr(cpu, "cpu_info", lambda: AMX)
    fp32 = Stylizer.load(model_file, device="cpu", precision="fp32")
    paths, skipped = fp32.runner.candidates()
    assert "bf16" not in paths and "compiled" not in paths
    assert skipped["bf16"] == skipped["compiled"] == "precision=fp32"
    monkeypatch.setattr(autotune, "choose", lambda *a, **k: pytest.fail("tuned a 64x48 image"))
    small = Stylizer.load(model_file, device="cpu")
    small(torch.rand(1, 3, 48, 64))
    assert small.runner.path == "accel"


@pytest.mark.parametrize("machine", [AVX2, AMX], ids=["avx2", "amx"])
def test_bf16_only_where_the_cpu_has_it(tuning, model_file, monkeypatch, machine):
    """bf16 made the fastest path by the fake clock: picked on a CPU with native bf16, never
    offered (so never picked) on one without."""
    monkeypatch.setattr(cpu, "cpu_info", lambda: machine)
    FakeClock(
        monkeypatch,
        {"accel": 10.0, "onednn": 12.0, "channels_last": 12.0, "bf16": 2.0, "onnxruntime": 12.0},
    )
    s = Stylizer.load(model_file, device="cpu")
    s(torch.rand(1, 3, SIDE, SIDE))
    choice = _choice(s)
    if machine is AMX:
        assert choice.path == "bf16" and choice.psnr["bf16"] >= 40
    else:
        assert choice.path == "accel" and "bf16" not in choice.ms
        assert "amx_bf16" in choice.skipped["bf16"]


def test_busy_cpu_runs_the_default_path_without_measuring_or_caching(
    tuning, model_file, monkeypatch, capsys
):
    monkeypatch.setattr(autotune, "busy", lambda: "load 9.0 on 2 CPUs")
    monkeypatch.setattr(autotune, "measure", lambda *a, **k: pytest.fail("measured on a busy CPU"))
    s = Stylizer.load(model_file, device="cpu")
    s(torch.rand(1, 3, SIDE, SIDE))
    assert s.runner.path == "accel" and not tuning.exists()
    assert "CPU path" not in capsys.readouterr().err  # nothing measured: nothing said


def test_unreadable_cache_is_measured_again(tuning, model_file, monkeypatch):
    tuning.parent.mkdir(parents=True)
    tuning.write_text("{not json")
    FakeClock(
        monkeypatch, {"accel": 10.0, "onednn": 5.0, "channels_last": 12.0, "onnxruntime": 12.0}
    )
    s = Stylizer.load(model_file, device="cpu")
    s(torch.rand(1, 3, SIDE, SIDE))
    assert s.runner.path == "onednn"
    assert json.loads(tuning.read_text())["version"] == autotune.CACHE_VERSION


def _entry(**changes) -> dict:
    entry = {
        "path": "onednn",
        "reason": "cached",
        "ms": {"accel": 10.0, "onednn": 5.0},
        "psnr": {"onednn": 60.0},
        "skipped": {},
        "timed_at": [96, 96],
        "seconds": 1.0,
    }
    return {**entry, **changes}


def _cache_with(tuning: Path, entry) -> None:
    """A cache file holding `entry` under the key the runner below will look up."""
    key = autotune.cache_key(
        "c8-16-32 r2 instance",
        128,
        ["accel", "onednn", "channels_last", "onnxruntime"]
        if onnxruntime_available()
        else ["accel", "onednn", "channels_last"],
    )
    tuning.parent.mkdir(parents=True, exist_ok=True)
    tuning.write_text(json.dumps({"version": 1, "choices": {key: entry, "other": _entry()}}))


@pytest.mark.parametrize(
    "entry",
    [
        _entry(ms={"accel": "fast"}),  # wrong types inside an entry
        _entry(timed_at="96x96"),
        _entry(timed_at=[96, None]),
        _entry(seconds=float("nan")),
        _entry(path=["onednn"]),
        _entry(skipped={"bf16": 3}),
        _entry(unknown_field=1),
        _entry(ms={"accel": {"nested": [[[[[[[[[[1]]]]]]]]]]}}),  # deep nesting
        "onednn",
        None,
        [1, 2],
        _entry(path="no_such_path"),  # a path not offered here
    ],
    ids=lambda e: json.dumps(e)[:40],
)
def test_a_bad_cache_entry_is_dropped_and_measured_again(tuning, model_file, monkeypatch, entry):
    _cache_with(tuning, entry)
    FakeClock(
        monkeypatch, {"accel": 10.0, "onednn": 12.0, "channels_last": 5.0, "onnxruntime": 12.0}
    )
    s = Stylizer.load(model_file, device="cpu")
    s(torch.rand(1, 3, SIDE, SIDE))
    assert s.runner.path == "channels_last" and not _choice(s).cached  # measured again
    choices = json.loads(tuning.read_text())["choices"]
    assert choices["other"] == _entry()  # a good entry of someone else's survives
    assert all(autotune._valid(e) for e in choices.values())


def test_a_deeply_nested_cache_file_is_ignored(tuning):
    tuning.parent.mkdir(parents=True)
    tuning.write_text('{"version": 1, "choices": {"k": ' + "[" * 100_000 + "]" * 100_000 + "}}")
    assert autotune._read(tuning) == {}


@pytest.mark.parametrize("kind", ["fifo", "directory", "dev_zero", "huge", "dangling_link"])
def test_a_cache_that_is_no_regular_file_or_huge_is_never_read_nor_waited_on(
    tuning, model_file, monkeypatch, kind, capsys
):
    """A FIFO (opening it for reading would wait for a writer), /dev/zero (endless), a huge
    file or a directory in the cache's place: ignored, the run measures and goes on."""
    tuning.parent.mkdir(parents=True)
    if kind == "fifo":
        os.mkfifo(tuning)
    elif kind == "directory":
        tuning.mkdir()
    elif kind == "dev_zero":
        tuning.symlink_to("/dev/zero")
    elif kind == "dangling_link":
        tuning.symlink_to(tuning.parent / "nowhere.json")
    else:
        with tuning.open("wb") as f:
            f.truncate(autotune.MAX_CACHE_BYTES + 1)  # sparse: big without taking the disk
    result = {}
    worker = threading.Thread(target=lambda: result.update(read=autotune._read(tuning)))
    worker.start()
    worker.join(timeout=10)
    assert not worker.is_alive() and result["read"] == {}
    FakeClock(
        monkeypatch, {"accel": 10.0, "onednn": 5.0, "channels_last": 12.0, "onnxruntime": 12.0}
    )
    s = Stylizer.load(model_file, device="cpu")
    s(torch.rand(1, 3, SIDE, SIDE))
    assert s.runner.path == "onednn"
    if kind == "directory":  # cannot be replaced: said in one line, the run goes on
        assert "the choice is not kept" in capsys.readouterr().err
    else:  # replaced by a good cache file; a link is replaced, its target untouched
        assert tuning.is_file() and not tuning.is_symlink()
        assert autotune._read(tuning)
        assert not (tuning.parent / "nowhere.json").exists()


def test_two_writers_at_once_lose_no_choice(tuning):
    """Each writer re-reads the cache under a lock before replacing it: 2 x 25 choices written
    concurrently all survive."""
    choice = autotune.Choice("accel", "fastest", {"accel": 1.0}, {"accel": 99.0})
    errors = []

    def writer(name):
        try:
            for i in range(25):
                autotune._write(tuning, f"{name} {i}", choice)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    tuning.parent.mkdir(parents=True)
    threads = [threading.Thread(target=writer, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    choices = autotune._read(tuning)
    assert set(choices) == {f"{n} {i}" for n in ("a", "b") for i in range(25)}


def test_multistyle_network_runs_every_path_with_its_style(tuning, tmp_path, monkeypatch):
    torch.manual_seed(0)
    net = TransformerNet(channels=(8, 16, 32), num_residual=1, styles=["a", "b"]).eval()
    path = save_exported(tmp_path / "multi.pt", net)
    s = Stylizer.load(path, device="cpu", mix={"a": 0.3, "b": 0.7})
    x = torch.rand(2, 3, SIDE, SIDE - 12)
    y = s(x)
    with torch.no_grad():
        expected = net(x, torch.tensor([0.3, 0.7]))
    assert torch.allclose(y, expected, atol=1e-4)
    runner = s.runner
    paths, _ = runner.candidates()
    for name, make in paths.items():
        out = make()(x, torch.tensor([0.3, 0.7]))
        assert torch.allclose(out, expected, atol=1e-4 if name != "bf16" else 5e-2), name


# -- bf16 -------------------------------------------------------------------------------------


def _photo_like(h: int, w: int) -> torch.Tensor:
    return autotune.timing_image(h, w)


@pytest.mark.parametrize("style", sorted(bundled_styles()))
def test_bf16_keeps_40db_on_every_bundled_network(style):
    """bf16 is accepted only where it stays >= 40 dB PSNR from fp32 on the networks shipped."""
    net, _ = load_exported(bundled_styles()[style])
    x = _photo_like(96, 124)
    with torch.no_grad():
        reference = net(x)
    out = bf16.forward(net, x)
    assert out.dtype == torch.float32 and out.is_contiguous()
    assert autotune.psnr(out, reference) >= 40
    odd = _photo_like(75, 101)  # not a multiple of 4: the upsamplings interpolate
    with torch.no_grad():
        assert autotune.psnr(bf16.forward(net, odd), net(odd)) >= 40


def test_bf16_reads_the_image_in_fp32():
    """Rounding the image itself to bf16 cost ~10 dB on a photo (starry_night, 512 px: 41 dB):
    the first conv reads the fp32 image."""
    net, _ = load_exported(bundled_styles()["starry_night"])
    x = _photo_like(96, 124)
    with torch.no_grad():
        reference = net(x)
    rounded_input = autotune.psnr(bf16.forward(net, x.to(torch.bfloat16).float()), reference)
    assert autotune.psnr(bf16.forward(net, x), reference) > rounded_input + 2


def test_bf16_norm_statistics_are_fp32():
    """A map whose mean dwarfs its spread: bf16 statistics would lose the spread entirely."""
    norm = torch.nn.InstanceNorm2d(1, affine=True)
    y = (100 + torch.linspace(-0.5, 0.5, 64).view(1, 1, 8, 8)).to(torch.bfloat16)
    with torch.no_grad():
        out = bf16._norm(y, norm, None, relu=False)
    expected = torch.nn.functional.instance_norm(y.float(), eps=norm.eps)
    assert (out.float() - expected).abs().max() < 0.05
