"""pycaffe as the reference for an exporter (ONNX, PyTorch): the net run in Caffe on the same
weights and input, and every Caffe blob each layer writes (in-place chains included: Caffe runs
layer by layer and each layer's output is read before the next one overwrites it) compared
with the exporter's value for it.  The first layer whose output differs by more than the
tolerance (relative to the blob's largest magnitude) is the one named.

Random weights are calibrated in Caffe first (see `calibrate`) so that a deep random net
neither explodes nor turns float32 rounding into large differences."""
from __future__ import annotations

import sys
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from google.protobuf import text_format

from dfseg.base.cli import nchw_argument
from tools.export.caffe_net import CaffeNet, CaffeNetError, Write
from tools.export.caffemodel import (Weights, fit_weights, random_weights, read_caffemodel,
                                     write_caffemodel)
from tools.export.reference_nets import deploy_param

REL_TOL = 1e-4
#: Arg-max labels and pooling masks are indices: near-ties may flip under 1e-7 differences.
INDEX_MISMATCH = 1e-3


class CheckError(CaffeNetError):
    """The check cannot run (no pycaffe, a layer our Caffe lacks, input of the wrong shape)."""


@dataclass(frozen=True)
class BlobComparison:
    layer: str
    layer_type: str
    blob: str
    error: float  # max |onnx - caffe| / max |caffe|, or the share of differing indices
    scale: float  # max |caffe|
    is_index: bool
    limit: float
    size: int = 0  # number of values compared
    differing: int = 0  # how many of them are off by more than the limit
    shape_problem: str = ""

    @property
    def ok(self) -> bool:
        return not self.shape_problem and bool(self.error <= self.limit)

    def describe(self) -> str:
        where = f"layer {self.layer!r} ({self.layer_type}) blob {self.blob!r}"
        if self.shape_problem:
            return f"{where}: {self.shape_problem}"
        if self.is_index:
            return f"{where}: {self.error:.2%} of indices differ"
        return f"{where}: max error {self.error:.2e} of max |value| {self.scale:.3g}"


@dataclass
class CheckReport:
    weights: str
    tolerance: float
    comparisons: list[BlobComparison] = field(default_factory=list)
    note: str = ""  # how the comparison was made when not plainly

    @property
    def failures(self) -> list[BlobComparison]:
        return [c for c in self.comparisons if not c.ok]

    @property
    def ok(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        layers = len({c.layer for c in self.comparisons})
        if self.failures:
            first = self.failures[0]
            note = f"; {self.note}" if self.note else ""
            return (f"check FAILED: first diverging {first.describe()}; "
                    f"{len(self.failures)} of {len(self.comparisons)} blobs differ by more "
                    f"than {self.tolerance:g} relative{note} (weights: {self.weights})")
        values = [c for c in self.comparisons if not c.is_index]
        worst = max(values, key=lambda c: c.error, default=None)
        detail = f"; worst: {worst.describe()}" if worst else ""
        note = f"; {self.note}" if self.note else ""
        return (f"check passed: {len(self.comparisons)} blobs of {layers} layers within "
                f"{self.tolerance:g} relative of pycaffe{detail}{note} (weights: {self.weights})")


def calibrate(caffe_net, rng) -> None:
    """Random but well-conditioned statistics, set in Caffe layer by layer from the real
    activations: each BatchNorm gets its input's per-channel second moment as variance (times
    a random moving-average factor) and a mean that leaves the channel 0.5 to 1.5 of its root
    mean square above zero; in nets without BatchNorm (merged BN, ICNet, the classic zoo nets)
    each biased convolution is rescaled to the same effect.

    Why: a random deep net passes float32 rounding differences on. Uncalibrated statistics let
    activations grow ~2x per residual block (to 1e4 and beyond, which the Softmax turns into
    large probability differences); channels centred at zero or below make a random ReLU net
    critical or chaotic, multiplying rounding differences ~1.3x per layer (1e-7 becomes 1e-4
    after ~40 layers: ResNet-50, MobileNets) between *any* two float32 engines, Caffe with
    another BLAS included. Channels sitting above zero keep most ReLUs open and, the next
    normalisation dividing by the power of that offset too, shrink differences from layer to
    layer, so they stay at the rounding level unless an operator really computes otherwise."""
    names = list(caffe_net._layer_names)
    types = [layer.type for layer in caffe_net.layers]
    has_bn = "BatchNorm" in types
    cursor = 0

    def run_to(last):
        nonlocal cursor
        if last >= cursor:
            caffe_net.forward(start=names[cursor], end=names[last])

    def channel_stats(blob):
        """Per-channel mean and root mean square (with a floor: a pooled 1x1 map can be 0)."""
        data = caffe_net.blobs[blob].data.astype(np.float64)
        mean = data.mean(axis=(0, 2, 3))
        power = (data ** 2).mean(axis=(0, 2, 3))
        return mean, np.sqrt(power + 0.1 * power.mean() + 1e-4)

    # Each channel becomes (x - mean) / rms + offset: dividing by the root mean square, not the
    # standard deviation, never amplifies the rounding of a channel whose mean dominates.
    for i, (name, kind) in enumerate(zip(names, types)):
        if kind == "BatchNorm":
            run_to(i - 1)
            mean, rms = channel_stats(caffe_net.bottom_names[name][0])
            offset = rng.uniform(0.5, 1.5, mean.shape)
            factor = rng.uniform(0.5, 2.0)
            blobs = caffe_net.params[name]
            blobs[0].data[...] = (mean - offset * rms) * factor
            blobs[1].data[...] = rms ** 2 * rng.uniform(0.8, 1.25, rms.shape) * factor
            blobs[2].data[...] = factor
            cursor = i
        elif kind == "Convolution" and not has_bn and len(caffe_net.params[name]) == 2:
            run_to(i)
            weight, bias = caffe_net.params[name]
            bias.data[...] = 0
            caffe_net.forward(start=name, end=name)
            mean, rms = channel_stats(caffe_net.top_names[name][0])
            weight.data[...] /= rms.reshape(-1, 1, 1, 1)
            bias.data[...] = rng.uniform(0.5, 1.5, rms.shape) - mean / rms
            cursor = i  # run this layer again with its new weights


def index_tops(net: CaffeNet) -> set[tuple[str, str]]:
    """(layer, blob) pairs that hold indices: ArgMax labels and pooling masks."""
    found = set()
    for layer in net.layers:
        if layer.type == "ArgMax" and not layer.argmax_param.out_max_val:
            found.update((layer.name, t) for t in layer.top)
        elif layer.type == "Pooling" and len(layer.top) == 2:
            found.add((layer.name, layer.top[1]))
    return found


def compare_blob(got: np.ndarray, want: np.ndarray, is_index: bool, tolerance: float,
                 **where) -> BlobComparison:
    if got.shape != want.shape:
        return BlobComparison(**where, error=np.inf, scale=0.0, is_index=is_index, limit=0.0,
                              shape_problem=f"shape {got.shape} vs Caffe's {want.shape}")
    if is_index:
        differing = int(np.count_nonzero(got != want))
        return BlobComparison(**where, error=differing / max(got.size, 1), scale=0.0,
                              is_index=True, limit=INDEX_MISMATCH, size=got.size,
                              differing=differing)
    scale = float(np.abs(want).max()) if want.size else 0.0
    deviation = np.abs(got.astype(np.float64) - want) / (scale or 1.0)
    error = float(deviation.max()) if want.size else 0.0
    if not np.isfinite(error):
        error = np.inf
    differing = int(np.count_nonzero(~(deviation <= tolerance)))  # NaN counts as differing
    return BlobComparison(**where, error=error, scale=scale, is_index=False, limit=tolerance,
                          size=want.size, differing=differing)


def caffe_with_weights(caffe, proto: Path, net: CaffeNet, weights, feeds, seed: int,
                            workdir: Path):
    """(pycaffe net, weights as read by Caffe, where they came from); random weights are
    written by us, read by Caffe and calibrated there."""
    if weights is None:
        weights_file = workdir / "random.caffemodel"
        write_caffemodel(weights_file, random_weights(net, seed), net.name)
        source = f"random weights, seed {seed}, calibrated in Caffe"
    else:
        weights_file, source = Path(weights), str(weights)
        fit_weights(net, read_caffemodel(weights_file), source)  # one clear error before Caffe
    caffe_net = caffe.Net(str(proto), caffe.TEST, weights=str(weights_file))
    for name, value in feeds.items():
        caffe_net.blobs[name].data[...] = value
    if weights is None:
        calibrate(caffe_net, np.random.default_rng(seed + 2))
    blobs: Weights = {name: [b.data.copy() for b in layer_blobs]
                      for name, layer_blobs in caffe_net.params.items()}
    return caffe_net, blobs, source


def input_feeds(net: CaffeNet, data: np.ndarray | None, seed: int) -> dict[str, np.ndarray]:
    if data is not None:
        if len(net.inputs) != 1:
            raise CheckError(f"net {net.name!r} has inputs {sorted(net.inputs)}; given input "
                             f"data needs a net with one input")
        (name, shape), = net.inputs.items()
        if tuple(data.shape) != tuple(shape):
            raise CheckError(f"input data has shape {tuple(data.shape)}, the net's input "
                             f"{name!r} is {tuple(shape)}")
        return {name: np.asarray(data, np.float32)}
    rng = np.random.default_rng(seed + 1)
    return {name: rng.normal(0.0, 1.0, shape).astype(np.float32)
            for name, shape in net.inputs.items()}


def add_check_arguments(parser) -> None:
    """The exporters' shared options (`to_onnx`, `to_torch`): input shape, seed, --check."""
    parser.add_argument("--input", type=nchw_argument, help="input shape NxCxHxW (needed for "
                        "data layers such as ImageData; overrides a declared input)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the random weights and input")
    parser.add_argument("--check", action="store_true",
                        help="compare every layer's output with pycaffe; exit 1 if any differs")
    parser.add_argument("--data", type=Path, help="with --check: the input as a .npy array "
                        "(default: random normal)")
    parser.add_argument("--tolerance", type=float, default=REL_TOL,
                        help="with --check: largest relative difference allowed (default 1e-4)")


def report_exit(report: "CheckReport | None", prog: str) -> int:
    """An exporter command's last word: no check, 0; a passed one, its summary and 0; a failed
    one, its summary on stderr and 1 (the files are written either way)."""
    if report is None:
        return 0
    if report.ok:
        print(report.summary())
        return 0
    print(f"{prog}: {report.summary()}", file=sys.stderr)
    return 1


def load_input(path: Path | None) -> np.ndarray | None:
    """--data: the check's input array (None: random)."""
    if path is None:
        return None
    try:
        return np.load(path)
    except (OSError, ValueError) as err:
        raise CheckError(f"{path}: not a readable .npy array ({err})") from None


def reference_run(caffe, param, cnet: CaffeNet, weights, data, seed: int):
    """(pycaffe net, feeds, the weights Caffe holds, where they came from) for comparing an
    export of `cnet` (the net `param` in TEST phase) with Caffe: the input `data` (else random),
    the caffemodel `weights` (else random, calibrated in Caffe)."""
    missing = sorted({layer.type for layer in cnet.layers} - set(caffe.layer_type_list()))
    if missing:
        raise CheckError(f"the Caffe in use has no {', '.join(missing)} layer: the check needs "
                         f"pycaffe to run every layer (run `make caffe` for dfseg's build)")
    inputs = input_feeds(cnet, data, seed)
    deploy = deploy_param(param, next(iter(cnet.inputs.values()))) if len(cnet.inputs) == 1 \
        else param
    with tempfile.TemporaryDirectory(prefix="dfseg_check_") as tmp:
        proto = Path(tmp) / "deploy.prototxt"
        proto.write_text(text_format.MessageToString(deploy))
        caffe_net, blobs, source = caffe_with_weights(caffe, proto, cnet, weights, inputs, seed,
                                                      Path(tmp))
    return caffe_net, inputs, fit_weights(cnet, blobs, source), source


def unpooling_moved_by_mask_flips(report: CheckReport, cnet: CaffeNet) -> int:
    """The number of differing indices of the pooling mask the first failing layer unpools,
    when that layer is an Upsample whose differing outputs they explain (each flipped index
    moves one value: two outputs differ); else 0."""
    if report.ok:
        return 0
    first = report.failures[0]
    layer = next(layer for layer in cnet.layers if layer.name == first.layer)
    if layer.type != "Upsample" or first.shape_problem:
        return 0
    mask = next((c for c in report.comparisons if c.is_index and c.blob == layer.bottom[1]),
                None)
    flips = mask.differing if mask is not None and mask.ok else 0
    return flips if 0 < first.differing <= 2 * flips else 0


def compare_layers(caffe_net, cnet: CaffeNet, writes: list[Write], got, feeds, tolerance,
                   missing: str = "no value"):
    """Run Caffe layer by layer and compare each write of each layer right after it ran with
    `got[write.value]` (a write absent from `got` fails, saying `missing`); returns the
    comparisons and Caffe's pooling masks (blob -> array)."""
    comparisons, masks = [], {}
    by_layer = defaultdict(list)
    for w in writes:
        by_layer[w.layer].append(w)
    layers = {layer.name: layer for layer in cnet.layers}
    indices = index_tops(cnet)
    for name, value in feeds.items():  # calibration may have run in-place layers on inputs
        caffe_net.blobs[name].data[...] = value
    for name in caffe_net._layer_names:
        caffe_net.forward(start=name, end=name)
        for w in by_layer.get(name, ()):
            layer = layers[name]
            caffe_blob = caffe_net.top_names[name][list(layer.top).index(w.blob)]
            want = caffe_net.blobs[caffe_blob].data
            where = dict(layer=name, layer_type=layer.type, blob=w.blob)
            if w.value not in got:
                comparisons.append(BlobComparison(**where, error=np.inf, scale=0.0,
                                                  is_index=False, limit=0.0,
                                                  shape_problem=missing))
                continue
            comparisons.append(compare_blob(got[w.value], want, (name, w.blob) in indices,
                                            tolerance, **where))
            if layer.type == "Pooling" and w.blob == layer.top[-1] and len(layer.top) == 2:
                masks[w.blob] = want.copy()
    return comparisons, masks


def mask_note(flips: int) -> str:
    """The report's note when unpooling was compared on Caffe's masks."""
    return (f"{flips} pooling-mask {'index differs' if flips == 1 else 'indices differ'} at "
            f"near-ties, moving unpooled values: unpooling layers were compared on Caffe's masks")
