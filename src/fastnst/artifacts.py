"""Former home of network files, now split by job; kept so older code and saved references to
`fastnst.artifacts.<name>` still work. New code imports from the module that owns the name:

- `fastnst.formats`: what a file holds, trust, safe loading, the meta layout, model.pt
- `fastnst.runners`: the runner classes, device / inference dtype, `open_network`
- `fastnst.export`: ONNX graph building and TorchScript writing
"""

from __future__ import annotations

from fastnst.export import (  # noqa: F401
    ONNX_OPSET,
    RowSplitConv,
    example_image,
    example_inputs,
    inference_copy,
    onnx_bytes,
)
from fastnst.formats import (  # noqa: F401
    EXPORT_FORMAT,
    EXPORT_VERSION,
    INPUT_NAME,
    META_KEY,
    OUTPUT_NAME,
    STYLE_INPUT_NAME,
    check_is_training_checkpoint,
    exported_network,
    jit_deprecation_silenced,
    load_exported,
    load_network,
    load_torch_file,
    meta_json,
    model_kind,
    save_exported,
)
from fastnst.runners import (  # noqa: F401
    BACKENDS,
    PRECISIONS,
    AutoRunner,
    Bf16Runner,
    OnnxRunner,
    OpenedNetwork,
    ScriptRunner,
    TorchRunner,
    inference_dtype,
    onnxruntime_available,
    open_network,
    resolve_device,
)

resolve_precision = inference_dtype  # the former name of runners.inference_dtype
