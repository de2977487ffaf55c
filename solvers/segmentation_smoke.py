"""Segmentation smoke run: DF-Seg trained through pycaffe on a data set laid out exactly like
Cityscapes, evaluated with the Cityscapes evaluator.

1. generate street-like frames in ``leftImg8bit/{train,val}/{city}/`` with label-id maps in
   ``gtFine/{split}/{city}/*_gtFine_labelIds.png`` (real label ids: road 7, sky 23, car 26,
   ego vehicle 1 = ignored, ...) — :func:`tools.data.cityscapes_dataset.make_synthetic`;
2. convert them with the official labelId -> trainId map into ``image label`` lists;
3. train a small DF-Seg (generator ``train`` form, our Python data layer with random
   scaling and stretching, poly solver) with :func:`solvers.training.train`;
4. predict every validation frame with the ``deploy`` form and score the predictions with
   ``tools.data.cityscapes_files`` (per-class IoU, category IoU, mean; the release log's layout).

:func:`run` writes ``OUT/summary.json`` (first/last training loss, mIoU) and ``OUT/pred_val.txt``.
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from dfseg.base.atomic import atomic_write_text
from prototxt_gen.generate import net_for, to_text
from prototxt_gen.models import resolve
from tools.data import cityscapes_dataset as cs
from tools.data.cityscapes_files import evaluate_dirs
from tools.data.cityscapes_labels import NUM_TRAIN_CLASSES
from tools.data.cityscapes_report import format_report
from tools.runtime.caffe import load_caffe

from .net_data import segmentation_train_net
from .solver_recipes import apply_overrides, cityscapes_solver, load_recipe, write_solver
from .training import TrainResult, train

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
                                 num_classes=NUM_TRAIN_CLASSES, crop=CROP, test_size=FRAME, batch_size=batch_size,
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
    deploy = net_for(resolve(encoding, NUM_TRAIN_CLASSES), "deploy", input_size=FRAME)
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
