"""Cityscapes evaluation: the release report's layout, its parser, and IoU cross-checked
against independent computations (set-based NumPy; the official cityscapesScripts when
installed)."""
from __future__ import annotations

import contextlib
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tools.data.cityscapes_files import evaluate_dirs
from tools.data.cityscapes_labels import (CATEGORIES, LABELS, TRAIN_CLASSES, labelid_to_trainid_lut,
                                          trainid_to_labelid_lut)
from tools.data.cityscapes_report import format_confusion, format_confusion_row, format_report
from tools.data.cityscapes_scores import CityscapesEvaluator, EvalResult
from tools.report.cityscapes_log import parse_cityscapes_eval
from tools.report.log_parsers import LogParseError

REPO = Path(__file__).resolve().parent.parent
RELEASE_PRED = "pred_df1seg_mergebn_val.txt"


@pytest.fixture(scope="module")
def release_report(reference_dir) -> tuple[Path, str]:
    path = reference_dir / "release" / "log" / RELEASE_PRED
    return path, path.read_bytes().decode()   # keep the progress line's carriage returns


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "tools.cityscapes_eval", *map(str, args)],
                          cwd=REPO, capture_output=True, text=True)


# ------------------------------------------------------------------------------- parse

def test_parse_release_report(release_report):
    _, text = release_report
    r = parse_cityscapes_eval(text, RELEASE_PRED)
    assert r["miou"] == 0.741 and round(r["miou"] * 100, 1) == 74.1
    assert r["miou_category"] == 0.880
    assert list(r["classes"]) == list(TRAIN_CLASSES)
    assert r["classes"]["road"] == 0.980 and r["classes"]["bicycle"] == 0.726
    assert r["classes_niou"]["person"] == 0.586 and np.isnan(r["classes_niou"]["road"])
    assert r["niou"] == 0.500 and r["niou_category"] == 0.719
    assert r["categories"] == {"flat": 0.985, "nature": 0.919, "object": 0.677, "sky": 0.941,
                               "construction": 0.919, "human": 0.799, "vehicle": 0.923}
    assert r["images"] == 500
    assert len(r["confusion_rows"]) == 33 and r["confusion_rows"]["road"]["prior"] == 0.3293


def test_parse_cli_json(release_report):
    path, _ = release_report
    p = _cli("parse", path, "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert set(out) == {"miou", "miou_category", "classes"}
    assert out["miou"] == 0.741 and out["miou_category"] == 0.88 and len(out["classes"]) == 19


def test_parse_truncated_and_foreign(release_report, tmp_path):
    _, text = release_report
    cut = text[:text.index("Score Average")]
    with pytest.raises(LogParseError, match=r"^x\.txt: no class mean IoU: 19 class score.*truncated"):
        parse_cityscapes_eval(cut, "x.txt")
    # cut after the class block: mIoU is there, the category figures are not
    partial = parse_cityscapes_eval(text[:text.index("categories")])
    assert partial["miou"] == 0.741 and partial["miou_category"] is None
    # colour codes of a terminal run do not matter
    coloured = re.sub(r"(\d\.\d{3})", "\x1b[92m\\1\x1b[0m", text)
    assert parse_cityscapes_eval(coloured)["classes"] == parse_cityscapes_eval(text)["classes"]
    bad = tmp_path / "notes.txt"
    bad.write_text("nothing to see\n")
    p = _cli("parse", bad, "--json")
    assert p.returncode == 2 and "notes.txt" in p.stderr and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


# ------------------------------------------------------------------------------ layout

def test_report_layout_matches_release(release_report):
    _, text = release_report
    lines = text.split("\n")
    parsed = parse_cityscapes_eval(text)
    # A matrix with ground truth in the same rows as the release (no "tunnel" pixels).
    confusion = np.ones((34, 34), dtype=np.int64)
    confusion[16] = 0
    block = format_confusion(confusion)
    first = lines.index(block[0])
    assert lines[first:first + 3] == block[:3]                       # rule, header, rule
    assert lines[first + 3 + 33] == block[-1]                        # closing rule
    # every confusion row of the release, re-printed from its parsed figures, is identical
    release_rows = lines[first + 3:first + 3 + 33]
    assert [format_confusion_row(name, row["fractions"], row["prior"])
            for name, row in parsed["confusion_rows"].items()] == release_rows
    # the whole report: same lines, same shape once the figures are masked
    result = EvalResult(confusion, {n: parsed["classes"][n] for n in TRAIN_CLASSES},
                        parsed["classes_niou"], parsed["categories"], parsed["categories_niou"], 500)
    ours = format_report(result, lines[0]).split("\n")
    assert len(ours) == len(lines)
    mask = lambda s: re.sub(r"\d|nan", "9", s)
    for i, (a, b) in enumerate(zip(ours, lines)):
        if not first + 3 <= i < first + 36:                         # matrix figures differ
            assert mask(a) == mask(b), f"line {i + 1}"
    # and with the release's own scores, the score blocks are the release's, byte for byte
    score_lines = [l for l in lines if " : " in l and "Score Average" not in l]
    assert all(l in ours for l in score_lines)


# -------------------------------------------------------------------- label definitions

def test_label_tables():
    assert len(TRAIN_CLASSES) == 19 and len(LABELS) == 34
    assert [l.id for l in LABELS] == list(range(34))
    to_train, to_label = labelid_to_trainid_lut(), trainid_to_labelid_lut()
    for t in range(19):
        assert to_train[to_label[t]] == t
    assert to_train[0] == 255 and to_label[255] == 0 and to_train[40] == 255
    assert {l.category for l in LABELS if not l.ignore_in_eval} == set(CATEGORIES)


def test_label_tables_match_official():
    official = pytest.importorskip("cityscapesscripts.helpers.labels",
                                   reason="cityscapesScripts not installed (optional cross-check)")
    ours = {(l.name, l.id, l.train_id, l.category, l.has_instances, l.ignore_in_eval) for l in LABELS}
    theirs = {(l.name, l.id, l.trainId, l.category, l.hasInstances, l.ignoreInEval)
              for l in official.labels if l.id >= 0}
    assert ours == theirs


# ------------------------------------------------------- IoU against a second implementation

def _random_maps(rng, shape=(48, 64)):
    """Train-id ground truth with ignored pixels, and a prediction that is right ~60 % of the time."""
    gt = rng.integers(0, 19, shape).astype(np.uint8)
    gt[rng.random(shape) < 0.15] = 255
    pred = np.where(rng.random(shape) < 0.6, gt, rng.integers(0, 19, shape)).astype(np.uint8)
    pred[pred == 255] = 0
    return pred, gt


def _set_based_iou(preds, gts):
    """Per-class IoU on train ids, counted as set sizes over all images; ignored ground
    truth excluded from false positives."""
    ious = {}
    for c, name in enumerate(TRAIN_CLASSES):
        tp = fp = fn = 0
        for pred, gt in zip(preds, gts):
            valid = gt != 255
            tp += np.sum((pred == c) & (gt == c))
            fp += np.sum((pred == c) & (gt != c) & valid)
            fn += np.sum((pred != c) & (gt == c))
        ious[name] = tp / (tp + fp + fn) if tp + fp + fn else float("nan")
    return ious


def _set_based_category_iou(preds, gts):
    train_category = {l.train_id: l.category for l in LABELS if l.train_id != 255}
    out = {}
    for cat in CATEGORIES:
        members = [t for t, c in train_category.items() if c == cat]
        tp = fp = fn = 0
        for pred, gt in zip(preds, gts):
            p_in, g_in, valid = np.isin(pred, members), np.isin(gt, members), gt != 255
            tp += np.sum(p_in & g_in)
            fp += np.sum(p_in & ~g_in & valid)
            fn += np.sum(~p_in & g_in)
        out[cat] = tp / (tp + fp + fn)
    return out


@pytest.mark.parametrize("seed", range(5))
def test_iou_matches_set_based_implementation(seed):
    rng = np.random.default_rng(seed)
    preds, gts = zip(*(_random_maps(rng) for _ in range(3)))
    ev = CityscapesEvaluator()
    lut = trainid_to_labelid_lut()
    for pred, gt in zip(preds, gts):
        ev.add(lut[pred], lut[gt])
    res = ev.result()
    expected = _set_based_iou(preds, gts)
    assert res.class_iou == pytest.approx(expected, rel=1e-12)
    assert res.category_iou == pytest.approx(_set_based_category_iou(preds, gts), rel=1e-12)
    assert res.miou == pytest.approx(np.mean(list(expected.values())), rel=1e-12)
    # a perfect prediction scores 1 everywhere
    perfect = CityscapesEvaluator()
    for gt in gts:
        perfect.add(lut[gt], lut[gt])
    assert perfect.result().miou == 1.0 and perfect.result().miou_category == 1.0


def test_iou_counts_predictions_on_ignored_ground_truth_nowhere():
    lut = trainid_to_labelid_lut()
    gt = np.array([[0, 0, 255, 255]], dtype=np.uint8)
    pred = np.array([[0, 1, 1, 0]], dtype=np.uint8)
    ev = CityscapesEvaluator()
    ev.add(lut[pred], lut[gt])
    r = ev.result()
    assert r.class_iou["road"] == 0.5            # tp 1, fn 1, the ignored pixel predicted road is no fp
    assert r.class_iou["sidewalk"] == 0.0        # tp 0, fp 1 (the road pixel); the ignored one is no fp
    assert np.isnan(r.class_iou["car"])          # absent everywhere: no score, left out of the mean
    assert r.miou == 0.25


# ----------------------------------------------------------------- files, CLI and the official script

def _write_cityscapes(root: Path, rng, n=3, shape=(40, 64)):
    """Ground truth laid out like Cityscapes (label ids + instance ids), predictions as train ids."""
    gt_dir, pred_dir = root / "gtFine" / "val" / "aachen", root / "pred"
    gt_dir.mkdir(parents=True)
    pred_dir.mkdir()
    to_train = labelid_to_trainid_lut()
    for i in range(n):
        gt = rng.integers(0, 34, shape).astype(np.uint8)
        inst = gt.astype(np.uint16)
        gt[:12, :16] = 26; inst[:12, :16] = 26000; inst[:6, :6] = 26001      # two cars
        gt[20:30, 30:50] = 24; inst[20:30, 30:50] = 24003                     # a person
        gt[32:36, :8] = 29; inst[32:36, :8] = 29000                           # a caravan (ignored)
        pred = np.where(rng.random(shape) < 0.5, to_train[gt], rng.integers(0, 19, shape)).astype(np.uint8)
        pred[pred == 255] = 0
        key = f"aachen_{i:06d}_000019"
        Image.fromarray(gt).save(gt_dir / f"{key}_gtFine_labelIds.png")
        Image.fromarray(inst).save(gt_dir / f"{key}_gtFine_instanceIds.png")
        Image.fromarray(pred).save(pred_dir / f"{key}_leftImg8bit.png")
    return pred_dir, root / "gtFine" / "val"


def test_eval_cli_on_cityscapes_layout(tmp_path):
    pred_dir, label_dir = _write_cityscapes(tmp_path / "cs", np.random.default_rng(1))
    out = tmp_path / "report.txt"
    p = _cli("eval", pred_dir, label_dir, "--out", out, "--json")
    assert p.returncode == 0, p.stderr
    summary = json.loads(p.stdout)
    report = parse_cityscapes_eval(out.read_bytes().decode())
    assert summary == {"miou": report["miou"], "miou_category": report["miou_category"],
                       "classes": report["classes"]}
    assert report["images"] == 3 and 0.0 < report["miou"] < 1.0
    assert not np.isnan(report["classes_niou"]["car"])              # instance maps were found
    assert out.read_text().startswith(str(label_dir))


def test_eval_trainid_ground_truth(tmp_path):
    rng = np.random.default_rng(2)
    (tmp_path / "gt" / "x").mkdir(parents=True)
    (tmp_path / "pred").mkdir()
    preds, gts = [], []
    for i in range(2):
        pred, gt = _random_maps(rng)
        Image.fromarray(gt).save(tmp_path / "gt" / "x" / f"x_{i:06d}_000001_gtFine_labelTrainIds.png")
        Image.fromarray(pred).save(tmp_path / "pred" / f"x_{i:06d}_000001.png")
        preds.append(pred), gts.append(gt)
    p = _cli("eval", tmp_path / "pred", tmp_path / "gt", "--json")
    assert p.returncode == 0, p.stderr
    got = json.loads(p.stdout)["classes"]
    expected = _set_based_iou(preds, gts)
    assert got == {k: round(v, 3) for k, v in expected.items()}


@pytest.mark.parametrize("damage, message", [
    ("size", "differ in size"),
    ("missing", "no prediction named aachen_000001_000019"),
    ("range", "train ids [40]"),
    ("corrupt", "cannot read image"),
])
def test_eval_cli_bad_input(tmp_path, damage, message):
    pred_dir, label_dir = _write_cityscapes(tmp_path / "cs", np.random.default_rng(3))
    victim = pred_dir / "aachen_000001_000019_leftImg8bit.png"
    if damage == "size":
        Image.fromarray(np.zeros((10, 10), np.uint8)).save(victim)
    elif damage == "missing":
        victim.unlink()
    elif damage == "range":
        Image.fromarray(np.full((40, 64), 40, np.uint8)).save(victim)
    else:
        victim.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    p = _cli("eval", pred_dir, label_dir)
    assert p.returncode == 2 and message in p.stderr and "Traceback" not in p.stderr
    assert "aachen_000001_000019" in p.stderr


def test_matches_official_cityscapes_scripts(tmp_path):
    """Our report against the official evaluation's on the same files: identical confusion
    matrix lines and identical IoU / nIoU lines (category order differs: the release's
    Python 2 dictionary order against the official's current one)."""
    pytest.importorskip("cityscapesscripts", reason="cityscapesScripts not installed (optional cross-check)")
    if not hasattr(np, "in1d"):   # removed in NumPy 2; the official script still calls it
        np.in1d = lambda a, b, invert=False: np.isin(a, b, invert=invert).ravel()
    import cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling as official

    pred_dir, label_dir = _write_cityscapes(tmp_path / "cs", np.random.default_rng(4))
    # the official script wants label-id predictions
    lut = trainid_to_labelid_lut()
    pred_files, gt_files = [], []
    for gt in sorted(label_dir.rglob("*_gtFine_labelIds.png")):
        key = gt.name.split("_gtFine")[0]
        pred = np.array(Image.open(pred_dir / f"{key}_leftImg8bit.png"))
        target = tmp_path / f"{key}_labelids.png"
        Image.fromarray(lut[pred]).save(target)
        pred_files.append(str(target)), gt_files.append(str(gt))
    official.args.JSONOutput = False
    official.args.colorized = False
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        official.evaluateImgLists(pred_files, gt_files, official.args)
    theirs = buf.getvalue().split("\n")
    result, search = evaluate_dirs(pred_dir, label_dir, progress=False)
    ours = format_report(result, search).split("\n")
    assert [l for l in ours if "|" in l] == [l for l in theirs if "|" in l]
    assert sorted(l for l in ours if " : " in l) == sorted(l for l in theirs if " : " in l)
