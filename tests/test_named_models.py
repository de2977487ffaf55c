"""The named models' files: read as package data, checked with real errors (not `assert`)."""
from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from importlib import resources
from pathlib import Path

import pytest

from dfseg.base.errors import InputError
from prototxt_gen import models
from prototxt_gen.models import ModelFileError, UnknownModelError, load_model

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def model_dir(tmp_path, monkeypatch):
    """A caffe_models folder of our own: df1 (a backbone) and a zoo folder."""
    shutil.copy(REPO / "caffe_models" / "df1.yaml", tmp_path / "df1.yaml")
    (tmp_path / "zoo").mkdir()
    monkeypatch.setattr(models, "MODELS_DIR", tmp_path)
    monkeypatch.setattr(models, "ZOO_DIR", tmp_path / "zoo")
    return tmp_path


def test_models_are_read_from_the_caffe_models_package():
    assert models.MODELS_DIR == resources.files("caffe_models")
    assert (models.MODELS_DIR / "df1seg.yaml").is_file() and (models.ZOO_DIR / "enet.yaml").is_file()
    assert "df1seg" in models.model_names() and "enet" in models.zoo_names()


def test_a_base_that_is_no_segmentation_model_is_bad_input(model_dir):
    (model_dir / "bad.yaml").write_text("name: bad\nbase: df1\nd8: true\n")
    with pytest.raises(ModelFileError, match=r"bad\.yaml: base 'df1' is not a DF-Seg model"):
        load_model("bad")
    assert issubclass(ModelFileError, InputError) and issubclass(UnknownModelError, InputError)


def test_the_base_check_holds_under_python_O(model_dir):
    """`python -O` drops asserts: the check must not be one."""
    (model_dir / "bad.yaml").write_text("name: bad\nbase: df1\n")
    code = textwrap.dedent(f"""
        from pathlib import Path
        from prototxt_gen import models
        models.MODELS_DIR, models.ZOO_DIR = Path({str(model_dir)!r}), Path({str(model_dir)!r}) / "zoo"
        try:
            models.load_model("bad")
        except models.ModelFileError as e:
            print("refused:", e)
    """)
    out = subprocess.run([sys.executable, "-O", "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0 and "refused:" in out.stdout and "is not a DF-Seg model" in out.stdout, out.stderr
