import pytest
import torch

from fastnst.artifacts import load_exported, save_exported
from fastnst.errors import FastNSTError
from fastnst.transformer import TransformerNet


@pytest.mark.parametrize("shape", [(1, 3, 64, 64), (2, 3, 33, 47), (1, 3, 17, 5), (1, 3, 101, 9)])
def test_output_size_equals_input_size_for_any_size(shape):
    net = TransformerNet(channels=(8, 16, 32), num_residual=2)
    out = net(torch.rand(shape))
    assert out.shape == shape
    assert out.min() >= 0 and out.max() <= 1


def test_johnson_architecture():
    net = TransformerNet()
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.kernel_size[0] for c in convs[:3]] == [9, 3, 3]
    assert [c.out_channels for c in convs[:3]] == [32, 64, 128]
    assert [c.stride[0] for c in convs[:3]] == [1, 2, 2]
    assert len(net.residuals) == 5
    assert convs[-1].kernel_size == (9, 9) and convs[-1].out_channels == 3
    assert any(isinstance(m, torch.nn.ReflectionPad2d) for m in net.modules())
    assert sum(isinstance(m, torch.nn.InstanceNorm2d) for m in net.modules()) == 2 + 1 + 10 + 2


def _multiply_adds(net: TransformerNet, x: torch.Tensor) -> int:
    """The convolutions' multiply-adds in one forward: the run time's measure that needs no clock."""
    total = []

    def count(conv, inputs, out):
        total.append(
            out.numel()
            * conv.in_channels
            // conv.groups
            * conv.kernel_size[0]
            * conv.kernel_size[1]
        )

    hooks = [
        m.register_forward_hook(count) for m in net.modules() if isinstance(m, torch.nn.Conv2d)
    ]
    with torch.no_grad():
        net(x)
    for hook in hooks:
        hook.remove()
    return sum(total)


def test_half_model_is_smaller_and_cheaper_to_run():
    full, half = TransformerNet(), TransformerNet(channels=(16, 32, 64))
    n_full = sum(p.numel() for p in full.parameters())
    n_half = sum(p.numel() for p in half.parameters())
    assert n_half < n_full / 3
    x = torch.rand(1, 3, 64, 64)
    assert _multiply_adds(half, x) < _multiply_adds(full, x) / 3


def test_unknown_norm_is_a_clear_error():
    with pytest.raises(FastNSTError, match="norm"):
        TransformerNet(norm="layer")


def test_export_round_trip_gives_identical_outputs(tmp_path):
    torch.manual_seed(0)
    net = TransformerNet(channels=(8, 16, 32), num_residual=1, norm="batch").eval()
    x = torch.rand(2, 3, 29, 31)
    path = save_exported(tmp_path / "m.pt", net, meta={"style": "s"})
    loaded, meta = load_exported(path)
    assert meta == {"style": "s"}
    assert loaded.config == net.config
    assert torch.equal(loaded(x), net(x))
    assert not list(tmp_path.glob(".*tmp")), "temp file left behind"


def test_loading_a_wrong_file_names_it(tmp_path):
    bad = tmp_path / "notes.pt"
    bad.write_text("hello")
    with pytest.raises(FastNSTError, match="notes.pt"):
        load_exported(bad)
    other = tmp_path / "other.pt"
    torch.save({"weights": 1}, other)
    with pytest.raises(FastNSTError, match="not an exported fastnst transformer"):
        load_exported(other)
    full = tmp_path / "full.pt"
    save_exported(full, TransformerNet(channels=(8, 16, 32), num_residual=1))
    truncated = tmp_path / "trunc.pt"
    truncated.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(FastNSTError, match="trunc.pt"):
        load_exported(truncated)
