"""`to_onnx --check`: the exported model in ONNX Runtime against the prototxt in pycaffe, every
Caffe blob each layer writes compared with the ONNX value that holds it (the comparison and the
calibrated random weights are tools.export.blob_check's, shared with `to_torch --check`)."""
from __future__ import annotations

import numpy as np
import onnx

from tools.runtime.caffe import import_caffe
from tools.export.blob_check import (INDEX_MISMATCH, REL_TOL, BlobComparison, CheckError,
                                     CheckReport, calibrate, compare_blob, compare_layers,
                                     mask_note, reference_run)
from tools.export.blob_check import unpooling_moved_by_mask_flips as _unpooling_moved_by_mask_flips
from tools.export.caffe_net import build_net, load_net_param
from tools.export.onnx_convert import build_graph, check_supported, make_model

__all__ = ["check", "CheckError", "CheckReport", "BlobComparison", "REL_TOL", "INDEX_MISMATCH",
           "calibrate", "compare_blob"]


def _run_onnx(model: onnx.ModelProto, feeds) -> dict[str, np.ndarray]:
    import onnxruntime as ort
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds)))


def check(net, weights=None, input_shape=None, *, seed: int = 0, data=None,
          tolerance: float = REL_TOL, caffe=None) -> tuple[onnx.ModelProto, CheckReport]:
    """Export `net` (the arguments of `convert`; `data`: the input array, else random) and
    compare it with pycaffe. Returns the exported model (the net's outputs only) and the
    report, whose comparisons are in Caffe's layer order."""
    param = load_net_param(net)
    check_supported(param)
    cnet = build_net(param, input_shape)
    caffe_net, feeds, blobs, source = reference_run(caffe or import_caffe(), param, cnet,
                                                    weights, data, seed)
    g = build_graph(cnet, blobs)
    doc = f"Caffe net {cnet.name!r}, weights: {source}"
    model = make_model(g, [g.current[b] for b in cnet.outputs], doc)
    report = CheckReport(source, tolerance)
    got = _run_onnx(make_model(g, [w.value for w in g.writes], doc), feeds)
    report.comparisons, caffe_masks = compare_layers(caffe_net, cnet, g.writes, got, feeds,
                                                     tolerance)
    flips = _unpooling_moved_by_mask_flips(report, cnet)
    if flips:
        # A pooling maximum that is a near-tie (two values equal to float rounding) can pick
        # another index in each engine; unpooling then moves that value, and every later
        # layer differs. Compare again with Caffe's masks fed to what reads them.
        g = build_graph(cnet, blobs, masks_from_caffe=True)
        inputs = {fed: caffe_masks[blob] for blob, (fed, _) in g.mask_inputs.items()}
        got = _run_onnx(make_model(g, [w.value for w in g.writes], doc), {**feeds, **inputs})
        report.comparisons, _ = compare_layers(caffe_net, cnet, g.writes, got, feeds, tolerance)
        report.note = mask_note(flips)
    return model, report
