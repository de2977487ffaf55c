"""LMDB and Cityscapes data tools, and the random scaling-and-stretching augmentation."""
from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest

from solvers.augment import Transform, apply
from solvers.data_sources import ClassificationSource, SegmentationSource
from tools.data import cityscapes_dataset as cs
from tools.data import lmdb_store as lt
from tools.data.cityscapes_labels import LABELS, NUM_TRAIN_CLASSES, TRAIN_CLASSES, labelid_to_trainid_lut


def _folder(tmp_path, classes=("cat", "dog"), per_class=3, size=(12, 10)):
    rng = np.random.default_rng(0)
    images = {}
    for c in classes:
        (tmp_path / "imgs" / c).mkdir(parents=True)
        for i in range(per_class):
            img = rng.integers(0, 255, (*size, 3), dtype=np.uint8)
            path = tmp_path / "imgs" / c / f"{i}.png"
            cv2.imwrite(str(path), img)
            images[path] = img
    return tmp_path / "imgs", images


def test_folder_to_lmdb_round_trip_and_verify(tmp_path):
    root, images = _folder(tmp_path)
    records, classes = lt.scan_image_folder(root)
    assert classes == ["cat", "dog"] and len(records) == 6
    n = lt.build_lmdb(records, tmp_path / "db")
    assert n == 6
    decoded = [lt.decode_datum(raw) for _, raw in lt.iterate_lmdb(tmp_path / "db")]
    for rec, (img, label) in zip(records, decoded):
        assert label == rec.label
        np.testing.assert_array_equal(img, images[rec.path])  # PNG is lossless
    report = lt.verify_lmdb(tmp_path / "db", num_classes=2)
    assert report["count"] == 6 and report["labels"] == {"0": 3, "1": 3} and report["shapes"] == {"12x10x3": 6}
    with pytest.raises(lt.DataError, match=r"record 00000003: label 1 outside the class range \[0, 1\)"):
        lt.verify_lmdb(tmp_path / "db", num_classes=1)
    assert not list(tmp_path.glob("*.partial-*"))


def test_list_file_with_resize(tmp_path):
    root, _ = _folder(tmp_path)
    (tmp_path / "list.txt").write_text("cat/0.png 4\ndog/1.png 7\n")
    records = lt.read_list_file(tmp_path / "list.txt", root)
    lt.build_lmdb(records, tmp_path / "db", resize=(8, 6))
    report = lt.verify_lmdb(tmp_path / "db")
    assert report["labels"] == {"4": 1, "7": 1} and report["shapes"] == {"8x6x3": 2}


def test_corrupt_image_names_the_file_and_leaves_no_database(tmp_path):
    root, _ = _folder(tmp_path)
    bad = root / "dog" / "9.png"
    bad.write_bytes(b"not a png at all")
    records, _ = lt.scan_image_folder(root)
    with pytest.raises(lt.DataError, match=r"dog/9.png: cannot decode image"):
        lt.build_lmdb(records, tmp_path / "db")
    assert not (tmp_path / "db").exists()
    assert not list(tmp_path.glob("db.partial-*"))  # the interrupted database is removed


def test_interrupted_build_is_never_mistaken_for_a_finished_one(tmp_path):
    def rows():
        for i in range(600):
            if i == 400:
                raise KeyboardInterrupt
            yield lt.datum_key(i), b"x"
    with pytest.raises(KeyboardInterrupt):
        lt.write_lmdb_group([tmp_path / "db"], rows())
    assert not (tmp_path / "db").exists() and not list(tmp_path.iterdir())


def test_cli_build_verify_and_errors(tmp_path):
    root, _ = _folder(tmp_path)
    run = lambda *a: subprocess.run([sys.executable, "-m", "tools.lmdb_tools", *a], capture_output=True, text=True)
    r = run("build", str(root), str(tmp_path / "db"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "db.classes.txt").read_text().split() == ["cat", "dog"]
    r = run("verify", str(tmp_path / "db"), "--json", "--num-classes", "2")
    assert r.returncode == 0 and '"count": 6' in r.stdout
    r = run("build", str(root), str(tmp_path / "db"))
    assert r.returncode == 2 and "already exists" in r.stderr and "Traceback" not in r.stderr
    r = run("verify", str(tmp_path / "nothing"))
    assert r.returncode == 2 and "not an LMDB database" in r.stderr
    # sizes go through the one HxW parser (dfseg.base.sizes): ASCII digits only
    r = run("build", str(root), str(tmp_path / "db2"), "--resize", "\uff18x8")
    assert r.returncode == 2 and "ASCII digits" in r.stderr and not (tmp_path / "db2").exists()


# --------------------------------------------------------------------------- Cityscapes
def test_official_label_mapping():
    assert NUM_TRAIN_CLASSES == len(TRAIN_CLASSES) == 19
    assert TRAIN_CLASSES[0] == "road" and TRAIN_CLASSES[-1] == "bicycle"
    ids = np.array([[7, 8, 11, 26, 33, 0, 1, 9, 14, 29, 30, 31]], np.uint8)
    np.testing.assert_array_equal(cs.to_train_ids(ids), [[0, 1, 2, 13, 18, 255, 255, 255, 255, 255, 255, 16]])
    # every train id 0..18 is produced by exactly one label id
    assert sorted(label.train_id for label in LABELS if label.train_id != 255) == list(range(19))
    with pytest.raises(lt.DataError, match="x.png: label id 40 outside the Cityscapes range"):
        cs.to_train_ids(np.array([[40]], np.uint8), "x.png")


def test_synthetic_cityscapes_to_lists_and_lmdb(tmp_path):
    counts = cs.make_synthetic(tmp_path / "cs", size=(32, 64), per_city=2)
    assert counts == {"train": 4, "val": 2}
    pairs = cs.scan(tmp_path / "cs", "train")
    assert [p.image.parent.name for p in pairs] == ["aachen", "aachen", "bochum", "bochum"]
    assert pairs[0].label.name == "aachen_000000_000019_gtFine_labelIds.png"
    list_file = cs.write_lists(tmp_path / "cs", "train", tmp_path / "out")
    lines = list_file.read_text().split("\n")
    first_img, first_lbl = lines[0].split()
    ids = cv2.imread(str(pairs[0].label), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(cv2.imread(first_lbl, cv2.IMREAD_UNCHANGED), labelid_to_trainid_lut()[ids])
    img_db, lbl_db, n = cs.build_lmdb_pairs(tmp_path / "cs", "val", tmp_path / "out")
    assert n == 2
    src = SegmentationSource(img_db, lbl_db, num_classes=19)
    image, label = src.read(1)
    assert image.shape == (32, 64, 3) and label.shape == (32, 64)
    assert set(np.unique(label)) <= set(range(19)) | {255}


def test_cityscapes_errors_name_the_file(tmp_path):
    cs.make_synthetic(tmp_path / "cs", size=(32, 64), per_city=1)
    pair = cs.scan(tmp_path / "cs", "train")[0]
    cv2.imwrite(str(pair.label), np.full((16, 64), 7, np.uint8))
    with pytest.raises(lt.DataError, match=r"aachen_000000_000019_gtFine_labelIds.png: label size 64x16 differs"):
        cs.load_pair(pair)
    cv2.imwrite(str(pair.label), np.full((32, 64), 45, np.uint8))
    with pytest.raises(lt.DataError, match="gtFine_labelIds.png: label id 45 outside"):
        cs.load_pair(pair)
    pair.label.unlink()
    with pytest.raises(lt.DataError, match="aachen_000000_000019_leftImg8bit.png: no label image"):
        cs.scan(tmp_path / "cs", "train")
    r = subprocess.run([sys.executable, "-m", "tools.cityscapes_data", "list", str(tmp_path / "nowhere"),
                        "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert r.returncode == 2 and "missing (expected the Cityscapes layout" in r.stderr


def test_segmentation_list_checks_label_range(tmp_path):
    img = np.zeros((8, 8, 3), np.uint8)
    lbl = np.full((8, 8), 3, np.uint8)
    lbl[0, 0] = 200
    cv2.imwrite(str(tmp_path / "i.png"), img)
    cv2.imwrite(str(tmp_path / "l.png"), lbl)
    (tmp_path / "list.txt").write_text(f"{tmp_path / 'i.png'} {tmp_path / 'l.png'}\n")
    with pytest.raises(lt.DataError, match=r"l.png: label 200 outside the class range \[0, 19\)"):
        SegmentationSource(tmp_path / "list.txt", num_classes=19).read(0)


# --------------------------------------------------------------------------- augmentation
def test_random_scaling_and_stretching_draws_independent_sizes():
    t = Transform(rand_h=(20, 40), rand_w=(30, 60), train=True)
    rng = np.random.default_rng(0)
    image = np.zeros((25, 25, 3), np.uint8)
    shapes = [apply(t, rng, image)[0].shape[1:] for _ in range(200)]
    hs, ws = zip(*shapes)
    assert min(hs) >= 20 and max(hs) <= 40 and min(ws) >= 30 and max(ws) <= 60
    assert min(hs) <= 22 and max(hs) >= 38 and min(ws) <= 33 and max(ws) >= 57  # the whole range is used
    assert len({w / h for h, w in shapes}) > 50  # aspect ratio changes: stretching, not only scaling
    # in testing no random resize happens
    assert apply(Transform(rand_h=(20, 40), rand_w=(30, 60), train=False), rng, image)[0].shape == (3, 25, 25)


def test_augmented_labels_stay_aligned_with_images():
    rng = np.random.default_rng(1)
    label = np.zeros((40, 60), np.uint8)
    label[:, 20:40] = 1
    label[25:, :] = 2
    image = np.repeat((label * 50 + 30)[..., None], 3, axis=2).astype(np.uint8)
    t = Transform(crop=(48, 48), rand_h=(30, 70), rand_w=(30, 90), mirror=True, train=True, mean=(30.0,),
                  scale=0.02)
    for _ in range(30):
        blob, lab = apply(t, rng, image, label)
        assert blob.shape == (3, 48, 48) and lab.shape == (48, 48)
        valid = lab != 255
        # away from region borders the image value identifies the label (+ mean/scale)
        inner = valid & (cv2.erode((lab == cv2.dilate(lab, np.ones((3, 3)))).astype(np.uint8), np.ones((3, 3))) > 0)
        expected = (lab[inner] * 50) * 0.02
        np.testing.assert_allclose(blob[0][inner], expected, atol=1e-4)
        assert set(np.unique(lab)) <= {0, 1, 2, 255}
        # padding (crop larger than the drawn size) is the mean colour (0 after subtraction) + ignore label
        np.testing.assert_allclose(blob[0][~valid], 0.0, atol=1e-6)


def test_centre_crop_and_short_side_resize():
    image = np.arange(100 * 200, dtype=np.uint32).reshape(100, 200) % 251
    image = np.repeat(image.astype(np.uint8)[..., None], 3, axis=2)
    blob, _ = apply(Transform(crop=(50, 50), train=False), np.random.default_rng(0), image)
    np.testing.assert_array_equal(blob[0], image[25:75, 75:125, 0])
    blob, _ = apply(Transform(resize_short=64, crop=(56, 56), train=False), np.random.default_rng(0), image)
    assert blob.shape == (3, 56, 56)


def test_classification_source_reads_lmdb_and_lists(tmp_path):
    root, _ = _folder(tmp_path)
    records, _ = lt.scan_image_folder(root)
    lt.build_lmdb(records, tmp_path / "db")
    src = ClassificationSource(tmp_path / "db", num_classes=2)
    assert len(src) == 6 and src.read(5)[1] == 1
    with pytest.raises(lt.DataError, match="label 1 outside the class range"):
        ClassificationSource(tmp_path / "db", num_classes=1).read(5)


# --------------------------------------------------------------------------- generated nets
def test_generated_train_nets_map_onto_the_python_layers():
    from prototxt_gen import caffe_pb2
    from prototxt_gen.generate import net_for
    from solvers.data_sources import DataParams
    from solvers.net_data import params_from_layer, with_data
    seg = net_for("df1seg", "train")
    params = DataParams.from_json(seg.layer[0].python_param.param_str)  # the generator's keys are ours
    assert params.crop == (1024, 1024) and params.rand_h == (512, 2048) and params.ignore_label == 255
    t = params.transform(train=True)
    assert t.rand_w == (1024, 4096) and t.mirror
    cls = with_data(net_for("df1", "train"), train={"source": "/data/train_lmdb"}, test={"source": "/data/val.txt"})
    train_p = DataParams.from_json(cls.layer[0].python_param.param_str)
    test_p = DataParams.from_json(cls.layer[1].python_param.param_str)
    assert cls.layer[0].python_param.layer == "ClassificationDataLayer"
    assert (train_p.source, train_p.crop, train_p.mirror) == ("/data/train_lmdb", (224, 224), True)
    assert (test_p.source, test_p.mirror) == ("/data/val.txt", False)
    # the POP fork's ImageData fields carry over one-to-one
    layer = caffe_pb2.LayerParameter(name="data", type="ImageData", top=["data", "label"])
    layer.transform_param.crop_h, layer.transform_param.crop_w = 200, 300
    layer.transform_param.mean_value.extend([1, 2, 3])
    p = layer.image_data_param
    p.source, p.batch_size = "list.txt", 4
    p.img_rand_h_lower, p.img_rand_h_upper, p.img_rand_w_lower, p.img_rand_w_upper = 256, 320, 300, 400
    got = params_from_layer(layer)
    assert (got.crop, got.rand_h, got.rand_w, got.mean) == ((200, 300), (256, 320), (300, 400), (1.0, 2.0, 3.0))
