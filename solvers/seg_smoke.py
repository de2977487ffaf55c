"""Segmentation smoke run: DF-Seg trained through pycaffe on a data set laid out exactly like
Cityscapes, evaluated with the Cityscapes evaluator.

1. generate street-like frames in ``leftImg8bit/{train,val}/{city}/`` with label-id maps in
   ``gtFine/{split}/{city}/*_gtFine_labelIds.png`` (real label ids: road 7, sky 23, car 26,
   ego vehicle 1 = ignored, ...) — :func:`tools.cityscapes_data.make_synthetic`;
2. convert them with the official labelId -> trainId map into ``image label`` lists;
3. train a small DF-Seg (generator ``train`` form, our Python data layer with random
   scaling and stretching, poly solver) with :func:`solvers.runner.train`;
4. predict every validation frame with the ``deploy`` form and score the predictions with
   ``tools.cityscapes_eval`` (per-class IoU, category IoU, mean; the release log's layout).

    python -m solvers.seg_smoke OUT [--iterations 150] [--encoding ENC]

Writes ``OUT/summary.json`` (first/last training loss, mIoU) and ``OUT/pred_val.txt``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

from prototxt_gen.generate import net_for, to_text
from prototxt_gen.models import resolve
from tools import cityscapes_data as cs
from tools.cityscapes_eval import evaluate_dirs, format_report
from dfseg.base.atomic import atomic_write_text

from .caffe_env import load_caffe
from .net_data import segmentation_train_net
from .runner import TrainResult, train
from .solver_gen import apply_overrides, cityscapes_solver, load_recipe, write_solver

DEFAULT_ENCODING = "[(64),(128),(256)]:[K,32,64]"
FRAME = (256, 512)            # H x W of the generated frames (Cityscapes' 1:2)
CROP = (256, 256)
RAND_H = (192, 320)           # random scaling and stretching of the training frames
RAND_W = (384, 640)
MEAN = (72.0, 83.0, 73.0)     # the release's Cityscapes mean and scale
SCALE = 0.008


def run(out: str | Path, iterations: int = 150, encoding: str = DEFAULT_ENCODING, batch_size: int = 2,
        base_lr: float = 0.01, per_city: int = 6, progress: bool = True) -> dict:
    caffe = load_caffe()
    out = Path(out)
    data_root = out / "cityscapes"
    if not (data_root / "gtFine").is_dir():
        cs.make_synthetic(data_root, size=FRAME, per_city=per_city,
                          cities={"train": ("aachen", "bochum"), "val": ("frankfurt",)})
    lists = {split: cs.write_lists(data_root, split, out / "lists") for split in ("train", "val")}
    result = _train(out, encoding, lists, len(cs.scan(data_root, "val")), iterations, batch_size, base_lr, progress)
    pred_dir = _predict_val(caffe, out, encoding, data_root, result.final_weights)
    scores, search = evaluate_dirs(pred_dir, data_root / "gtFine" / "val", progress=False)
    atomic_write_text(out / "pred_val.txt", format_report(scores, search))
    summary = _summary(out, encoding, result, scores)
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1))
    return summary


def _train(out: Path, encoding: str, lists: dict, val_count: int, iterations: int, batch_size: int,
           base_lr: float, progress: bool) -> TrainResult:
    """The generator's ``train`` form with our data layer, a poly solver, one validation at the end."""
    net = segmentation_train_net(encoding, train_list=str(lists["train"]), val_list=str(lists["val"]),
                                 num_classes=cs.NUM_CLASSES, crop=CROP, test_size=FRAME, batch_size=batch_size,
                                 mean=MEAN, scale=SCALE, rand_h=RAND_H, rand_w=RAND_W)
    atomic_write_text(out / "train_net.prototxt", to_text(net))
    recipe = apply_overrides(load_recipe("cityscapes"), [f"max_iter={iterations}", f"base_lr={base_lr}",
                                                         f"batch_size={batch_size}", "display=0"])
    sp = cityscapes_solver("train_net.prototxt", recipe=recipe)
    sp.test_iter.append(val_count)
    sp.test_interval = iterations
    sp.test_initialization = False
    write_solver(sp, out / "solver.prototxt")
    return train(out / "solver.prototxt", out / "run", snapshot_every=max(1, iterations // 3), progress=progress)


def _predict_val(caffe, out: Path, encoding: str, data_root: Path, weights: Path) -> Path:
    """Label-id PNGs of every validation frame, predicted with the deploy form and `weights`."""
    deploy = net_for(resolve(encoding, cs.NUM_CLASSES), "deploy", input_size=FRAME)
    atomic_write_text(out / "deploy.prototxt", to_text(deploy))
    dnet = caffe.Net(str(out / "deploy.prototxt"), caffe.TEST, weights=str(weights))
    pred_dir = out / "pred_val"
    pred_dir.mkdir(exist_ok=True)
    for pair in cs.scan(data_root, "val"):
        image = cv2.imread(str(pair.image), cv2.IMREAD_COLOR).astype(np.float32)
        blob = ((image - np.asarray(MEAN, np.float32)) * SCALE).transpose(2, 0, 1)[None]
        dnet.blobs["data"].data[...] = blob
        dnet.forward()
        # full-resolution class scores ("prob" feeds the ArgMax "pred", so it is no net output)
        pred = dnet.blobs["prob"].data[0].argmax(axis=0).astype(np.uint8)
        stem = pair.image.name[: -len(cs.IMAGE_SUFFIX)]
        cv2.imwrite(str(pred_dir / f"{stem}.png"), pred)
    return pred_dir


def _summary(out: Path, encoding: str, result: TrainResult, scores) -> dict:
    with (out / "run" / "train_log.csv").open() as f:
        losses = [float(line.split(",")[3]) for line in f.read().splitlines()[1:]]
    window = max(1, min(20, len(losses) // 4))
    return {"encoding": encoding, "iterations": result.iterations,
            "loss_first": float(np.mean(losses[:window])), "loss_last": float(np.mean(losses[-window:])),
            "miou": scores.miou, "miou_category": scores.miou_category,
            "classes": {k: (None if v != v else v) for k, v in scores.class_iou.items()},
            "pixel_accuracy_val": result.last_val.get("accuracy"), "report": str(out / "pred_val.txt")}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m solvers.seg_smoke", description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--iterations", type=int, default=150)
    ap.add_argument("--encoding", default=DEFAULT_ENCODING)
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--base-lr", type=float, default=0.01)
    args = ap.parse_args(argv)
    try:
        s = run(args.out, args.iterations, args.encoding, args.batch_size, args.base_lr)
    except RuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"loss {s['loss_first']:.3f} -> {s['loss_last']:.3f} over {s['iterations']} iterations; "
          f"mIoU {s['miou']:.3f} (category {s['miou_category']:.3f}); report {s['report']}")
    return 0 if s["loss_last"] < s["loss_first"] else 1


if __name__ == "__main__":
    sys.exit(main())
