"""fastnst's CPU acceleration, an explicit layer that callers opt into; the models stay plain
PyTorch (`transformer.py` knows nothing of it). Each fast path computes what the plain one does
(up to float rounding) and checks per call that it applies: eager fp32 on CPU, not traced,
exported or compiled (`fastconv.fast_path_allowed`); elsewhere the plain layers run.

    fastconv     NNPACK Winograd/FFT convolutions where they beat oneDNN (forward and backward)
    subpixel     the transformer's 2x upsample-then-conv computed at the low resolution
    fused        the transformer's fused inference forward (instance norm into the next conv)
    bf16         bf16 inference forward (bf16 convs, fp32 instance-norm statistics and output)
    compiled     the network in bf16 + channels_last under torch.compile, its code cached on disk
    paths        the registry of CPU inference paths (name, description, factory, where offered)
    autotune     which CPU path is fastest on this machine, measured once and cached
    cpu          what this CPU is: model name, flags, native bf16 / AMX
    cpu_tuning   process settings: glibc malloc keeping freed memory, passive OpenMP waits

Opting in:

    accel.accelerate(net)            # in place: NNPACK convs + sub-pixel upsampling (training too);
                                     # the same modules, parameters and state_dict
    forward = accel.fast_forward(net)   # inference: forward(x, style=None, stats=None), fused
                                        # where it applies, else net(x, style, stats=stats)
    vgg.VGG19Features                # builds its convs as fastconv.Conv2d

The Stylizer's torch runner (stylize.py) and the training module (module.py) opt in;
cpu_tuning is applied by the CPU entry points (cli.py, Stylizer.load, train.py).

Importing this package loads no torch (the CLI sets OpenMP's wait policy before torch starts):
the submodules load on first use.
"""

from __future__ import annotations

import importlib

_SUBMODULES = (
    "fastconv",
    "subpixel",
    "fused",
    "bf16",
    "compiled",
    "paths",
    "autotune",
    "cpu",
    "cpu_tuning",
)


def accelerate(module):
    """Route `module`'s convolutions through NNPACK where faster and its transformer upsamplings
    through the sub-pixel path, in place (`fastconv.use_nnpack`, `subpixel.use_subpixel`): the
    same module objects, parameters and state_dict. Returns `module`."""
    from fastnst.accel import fastconv, subpixel

    return fastconv.use_nnpack(subpixel.use_subpixel(module))


def fast_forward(net):
    """The inference forward of a TransformerNet through the fused CPU path:
    `forward(x, style=None, stats=None)` = `fused.forward(net, x, style, stats)`."""
    from fastnst.accel import fused

    def forward(x, style=None, stats=None):
        return fused.forward(net, x, style, stats)

    return forward


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
