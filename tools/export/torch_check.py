"""`to_torch --check`: the generated PyTorch module against the prototxt in pycaffe, on the same
weights and input: every Caffe blob each layer writes, read from the running `forward` itself
(a trace function takes the local variables after each line), so the code compared is the
code shipped.  The comparison and the calibrated random weights are
tools.export.blob_check's, shared with `to_onnx --check`."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from tools.runtime.caffe import import_caffe
from tools.export.blob_check import (REL_TOL, CheckReport, compare_layers, mask_note,
                                     reference_run, unpooling_moved_by_mask_flips)
from tools.export.caffe_net import CaffeNet, Write, build_net, check_supported, load_net_param
from tools.export.torch_convert import SUPPORTED, TorchModule, convert, instantiate


def _as_array(value) -> np.ndarray:
    return value.detach().cpu().numpy().copy()


def record_blobs(module: TorchModule, feeds: dict[str, np.ndarray], namespace=None, model=None
                 ) -> tuple[dict[tuple[str, str], np.ndarray], str]:
    """Run the generated module once on `feeds` (Caffe input blob -> array) and return every
    write of `forward`, (layer, blob) -> value right after that layer's line ran, and the
    error that stopped it ('' when it ran through: a wrong conversion may make shapes that
    a later layer refuses, and what ran until then is still compared)."""
    import torch
    if model is None:
        namespace, model = instantiate(module)
    code = type(model).forward.__code__
    recorded: dict[tuple[str, str], np.ndarray] = {}
    pending: list[Write] = []

    def in_forward(frame, event, arg):
        if event == "exception":   # the line did not complete: its tops hold nothing new
            pending.clear()
        elif event in ("line", "return"):
            for write in pending:    # the line before has run: its tops are bound
                recorded[(write.layer, write.blob)] = _as_array(frame.f_locals[write.value])
            pending[:] = module.line_writes.get(frame.f_lineno, []) if event == "line" else []
        return in_forward

    def on_call(frame, event, arg):
        return in_forward if frame.f_code is code else None

    inputs = [torch.from_numpy(np.ascontiguousarray(feeds[name])) for name in module.inputs]
    previous = sys.gettrace()
    sys.settrace(on_call)
    try:
        with torch.no_grad():
            model(*inputs)
    except (RuntimeError, ValueError, IndexError) as err:   # torch's shape and index errors
        return recorded, " ".join(str(err).split())
    finally:
        sys.settrace(previous)
    return recorded, ""


def _compared(caffe_net, cnet: CaffeNet, module: TorchModule, run, feeds, tolerance):
    recorded, error = run
    writes = [Write(w.layer, w.blob, f"{w.layer}\0{w.blob}") for w in module.writes]
    got = {f"{layer}\0{blob}": value for (layer, blob), value in recorded.items()}
    return compare_layers(caffe_net, cnet, writes, got, feeds, tolerance,
                          missing=f"not computed: the module stopped with {error!r}")


def _with_caffe_masks(module: TorchModule, cnet: CaffeNet, caffe_masks):
    """The generated module whose unpooling layers read Caffe's pooling masks instead of
    torch's (in net order: the k-th max_unpool call is the k-th Upsample layer)."""
    import torch
    namespace, model = instantiate(module)
    masks = iter([caffe_masks[layer.bottom[1]] for layer in cnet.layers
                  if layer.type == "Upsample"])
    unpool = namespace.max_unpool

    def unpool_on_caffes_mask(x, mask, *args, **kwargs):
        return unpool(x, torch.from_numpy(next(masks)), *args, **kwargs)

    namespace.max_unpool = unpool_on_caffes_mask
    return namespace, model


def check(net, weights=None, input_shape=None, *, seed: int = 0, data=None,
          tolerance: float = REL_TOL, caffe=None, origin: str | None = None
          ) -> tuple[TorchModule, CheckReport]:
    """Convert `net` (the arguments of `tools.export.torch_convert.convert`; `data`: the input
    array, else random) with the weights Caffe holds and compare every blob with pycaffe.
    Returns the module (with those weights: random ones calibrated in Caffe) and the report,
    whose comparisons are in Caffe's layer order."""
    if origin is None and isinstance(net, (str, Path)):
        origin = str(net)
    param = load_net_param(net)
    check_supported(param, SUPPORTED, "PyTorch export")
    cnet = build_net(param, input_shape)
    caffe_net, feeds, blobs, source = reference_run(caffe or import_caffe(), param, cnet,
                                                    weights, data, seed)
    module = convert(cnet, blobs, origin=origin, weights_source=source)
    report = CheckReport(source, tolerance)
    report.comparisons, caffe_masks = _compared(caffe_net, cnet, module,
                                                record_blobs(module, feeds), feeds, tolerance)
    flips = unpooling_moved_by_mask_flips(report, cnet)
    if flips:   # near-tie maxima picked other indices: compare unpooling on Caffe's masks
        namespace, model = _with_caffe_masks(module, cnet, caffe_masks)
        report.comparisons, _ = _compared(caffe_net, cnet, module,
                                          record_blobs(module, feeds, namespace, model), feeds,
                                          tolerance)
        report.note = mask_note(flips)
    return module, report
