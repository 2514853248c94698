"""The XGBoost, LightGBM and custom Python runtimes behind the one model interface: the libraries' own answers,
their signatures, and refusals of files that are not what their format says, in fixed texts."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import make_classification, make_regression

from sluice_serving.config import Config, ConfigError
from sluice_serving.custom import digest_main, pack_directory, unpack_directory
from sluice_serving.fetch import FetchError, fetch, sha256_digest
from sluice_serving.models import ModelError, ModelFile, load_model
from unit.serving.support import CUSTOM_MODEL, make_boosted_classifier, make_custom_model


@pytest.mark.parametrize("file_name", ["model.json", "model.ubj", "model.txt"])
def test_a_binary_tree_classifier_gives_the_librarys_labels_and_probabilities(file_name: str, tmp_path: Path) -> None:
    path, estimator = make_boosted_classifier(tmp_path, file_name)
    model = load_model(ModelFile.read(path), "lightgbm" if file_name.endswith(".txt") else "xgboost", False, 1)
    rows = make_classification(n_samples=300, n_features=20, random_state=0)[0][:32]
    dtype = np.float32 if model.inputs[0].datatype == "FP32" else np.float64

    out = model.predict({"input": rows.astype(dtype)}, ["predict", "predict_proba"])

    assert out["predict"].tolist() == estimator.predict(rows).tolist()
    np.testing.assert_array_equal(out["predict_proba"], estimator.predict_proba(rows))
    assert model.classifier
    assert [o.name for o in model.outputs] == ["predict", "predict_proba"]
    assert model.inputs[0].shape == (-1, 20)


def test_multiclass_and_regression_trees_answer_like_their_libraries(tmp_path: Path) -> None:
    import lightgbm
    import xgboost

    x, y = make_classification(n_samples=200, n_features=6, n_informative=4, n_classes=3, random_state=0)
    xr, yr = make_regression(n_samples=200, n_features=6, random_state=0)
    cases: list[tuple[Any, str, np.ndarray[Any, Any]]] = [
        (xgboost.XGBClassifier(n_estimators=5, max_depth=3).fit(x, y), "xgboost", x),
        (lightgbm.LGBMClassifier(n_estimators=5, verbose=-1).fit(x, y), "lightgbm", x),
        (xgboost.XGBRegressor(n_estimators=5, max_depth=3).fit(xr, yr), "xgboost", xr),
        (lightgbm.LGBMRegressor(n_estimators=5, verbose=-1).fit(xr, yr), "lightgbm", xr),
    ]
    for index, (estimator, fmt, rows) in enumerate(cases):
        path = tmp_path / f"{index}.{'txt' if fmt == 'lightgbm' else 'json'}"
        (estimator.booster_ if fmt == "lightgbm" else estimator).save_model(path)
        model = load_model(ModelFile.read(path), fmt, False, 1)
        dtype = np.float32 if fmt == "xgboost" else np.float64

        out = model.predict({"input": rows[:20].astype(dtype)}, [o.name for o in model.outputs])

        np.testing.assert_allclose(out["predict"], estimator.predict(rows[:20]), rtol=1e-6)
        assert model.classifier == hasattr(estimator, "classes_")
        assert model.outputs[0].datatype == ("INT64" if model.classifier else model.inputs[0].datatype)


@pytest.mark.parametrize(
    ("fmt", "content", "refusal"),
    [
        ("xgboost", b"\x00binary", "is not an XGBoost JSON or UBJSON model file"),
        ("xgboost", b'{"learner": "<script>"}', "xgboost cannot load bad as a model"),
        ("lightgbm", b"\xff\xfe", "is not a LightGBM text model file"),
        ("lightgbm", b"tree\nversion=v4\nnum_class=<script>\n", "lightgbm cannot load bad as a model"),
    ],
)
def test_a_file_that_is_not_a_tree_model_is_refused_in_a_fixed_text(fmt: str, content: bytes, refusal: str) -> None:
    with pytest.raises(ModelError) as refused:
        load_model(ModelFile("bad", content), fmt, False, 1)

    assert str(refused.value).endswith(refusal)
    assert "script" not in str(refused.value)


def test_the_directory_digest_covers_paths_and_contents_but_not_pycache(tmp_path: Path) -> None:
    directory, _ = make_custom_model(tmp_path)
    before = sha256_digest(pack_directory(directory, 1 << 20))
    (directory / "__pycache__").mkdir()
    (directory / "__pycache__" / "model.cpython-311.pyc").write_bytes(b"compiled")

    assert sha256_digest(pack_directory(directory, 1 << 20)) == before
    (directory / "weights.json").rename(directory / "weights2.json")
    assert sha256_digest(pack_directory(directory, 1 << 20)) != before


def test_the_encoding_of_a_directory_is_the_documented_one(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_bytes(b"A")
    (tmp_path / "model.py").write_bytes(b"model")

    data = pack_directory(tmp_path, 1 << 20)

    assert data == b"model.py\x005\x00model" + b"pkg/a.py\x001\x00A"
    assert unpack_directory(data) == [("model.py", b"model"), ("pkg/a.py", b"A")]


def test_the_digest_command_prints_what_the_server_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory, _ = make_custom_model(tmp_path)

    digest_main([str(directory)])

    printed = capsys.readouterr().out.strip()
    assert fetch(str(directory), str(tmp_path / "cache"), printed, 10, 1 << 20).directory
    with pytest.raises(FetchError, match="digest mismatch"):
        fetch(str(directory), str(tmp_path / "cache"), "sha256:" + "0" * 64, 10, 1 << 20)


def test_only_the_python_format_loads_a_directory(tmp_path: Path) -> None:
    directory, _ = make_custom_model(tmp_path)
    file = fetch(str(directory), str(tmp_path / "cache"), "", 10, 1 << 20)

    with pytest.raises(ModelError, match="custom-model is a directory: only the python format loads one"):
        load_model(file, "onnx", True, 1)


def test_a_model_directory_larger_than_the_limit_or_with_a_symlink_is_refused(tmp_path: Path) -> None:
    directory, _ = make_custom_model(tmp_path)
    with pytest.raises(ModelError, match="larger than SLUICE_MAX_MODEL_BYTES"):
        pack_directory(directory, 100)
    os.symlink("/etc/hostname", directory / "link")
    with pytest.raises(ModelError, match="symbolic link"):
        pack_directory(directory, 1 << 20)


def test_the_example_custom_model_serves_with_its_digest_and_is_refused_without(tmp_path: Path) -> None:
    file = fetch(str(CUSTOM_MODEL), str(tmp_path), "", 10, 1 << 20)
    with pytest.raises(ModelError, match=r"refusing to load custom-model: .* MODEL_DIGEST pinned"):
        load_model(file, "python", False, 1)

    model = load_model(file, "python", True, 1)

    out = model.predict({"input": np.array([[1.0, 0.0, 0.0, 1.0]])}, ["label", "probability"])
    assert out["label"].tolist() == [1]
    assert out["probability"][0] == pytest.approx(1 / (1 + np.exp(-2.7)))
    assert (model.platform, model.prediction_output, model.classifier) == ("python", "label", True)
    assert [s.as_json() for s in model.inputs] == [{"name": "input", "datatype": "FP64", "shape": [-1, 4]}]


def _wheel(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


SCORER = "class Scorer:\n    def load(self):\n        self.k = 2\n    def predict(self, inputs):\n        return {'predict': inputs['input'].sum(axis=1) * self.k}\n"  # noqa: E501


def test_a_wheel_names_its_model_class_in_an_entry_point() -> None:
    data = _wheel({
        "wheel_scorer/__init__.py": "",
        "wheel_scorer/core.py": SCORER,
        "wheel_scorer-1.0.dist-info/entry_points.txt": "[sluice_serving.model]\nscorer = wheel_scorer.core:Scorer\n",
    })  # fmt: skip

    model = load_model(ModelFile("scorer.whl", data), "python", True, 1)

    assert model.predict({"input": np.array([[1.0, 2.0]])}, ["predict"])["predict"].tolist() == [6.0]
    assert [s.name for s in model.outputs] == ["predict"]  # no metadata(): one FP64 input, one FP64 output


@pytest.mark.parametrize(
    ("files", "refusal"),
    [
        ({"../escape.py": "", "x-1.dist-info/entry_points.txt": ""}, "leaves its directory"),
        ({"wheel_none/core.py": SCORER}, "must name one module:Class"),
        ({"wheel_bad/x.py": "", "x-1.dist-info/entry_points.txt": "[sluice_serving.model]\na = x:1\n"}, "must name"),
        (
            {"wheel_raises/m.py": "raise SystemExit('<secret>')",
             "x-1.dist-info/entry_points.txt": "[sluice_serving.model]\na = wheel_raises.m:M\n"},
            "importing the python model's class failed",
        ),
        (
            {"wheel_function/m.py": "def predict(inputs):\n    return inputs\n",
             "x-1.dist-info/entry_points.txt": "[sluice_serving.model]\na = wheel_function.m:predict\n"},
            "class is not a class",
        ),
        (
            {"wheel_meta/m.py": SCORER + "    def metadata(self):\n        return {'inputs': '<secret>'}\n",
             "x-1.dist-info/entry_points.txt": "[sluice_serving.model]\na = wheel_meta.m:Scorer\n"},
            r"metadata\(\) is not",
        ),
    ],
    ids=["path outside", "no entry point", "bad entry point", "import exits", "a function", "bad metadata"],
)  # fmt: skip
def test_a_wheel_that_cannot_be_a_model_is_refused_in_a_fixed_text(files: dict[str, str], refusal: str) -> None:
    with pytest.raises(ModelError, match=refusal) as refused:
        load_model(ModelFile("bad.whl", _wheel(files)), "python", True, 1)

    assert "secret" not in str(refused.value)


def test_a_python_model_that_returns_no_declared_output_fails_the_request_not_the_server(tmp_path: Path) -> None:
    directory = tmp_path / "forgetful"
    directory.mkdir()
    (directory / "model.py").write_text(SCORER.replace("Scorer", "Model").replace("'predict'", "'other'"))
    model = load_model(fetch(str(directory), str(tmp_path), "", 10, 1 << 20), "python", True, 1)

    with pytest.raises(ModelError, match="did not return every declared output"):
        model.predict({"input": np.ones((1, 2))}, ["predict"])


@pytest.mark.parametrize(
    ("uri", "fmt"),
    [("s3://m/model.ubj", "xgboost"), ("https://m/model-1.0-py3-none-any.whl", "python")],
)
def test_xgboost_ubjson_and_wheels_are_recognized_by_their_suffix(uri: str, fmt: str) -> None:
    assert Config.from_env({"MODEL_URI": uri}).model_format == fmt


def test_an_unknown_format_is_a_configuration_error_listing_the_formats() -> None:
    with pytest.raises(ConfigError, match="onnx, sklearn, xgboost, lightgbm, python"):
        Config.from_env({"MODEL_URI": "/m/model.bin", "MODEL_FORMAT": "pytorch"})
