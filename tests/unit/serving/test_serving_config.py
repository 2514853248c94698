"""Configuration from the environment."""

from __future__ import annotations

import pytest

from sluice_serving.config import DEFAULT_LATENCY_BUCKETS, Config, ConfigError, help_table


def test_defaults_apply_when_only_the_model_uri_is_set() -> None:
    cfg = Config.from_env({"MODEL_URI": "/models/m.onnx"})
    assert (cfg.model_name, cfg.model_version, cfg.model_format) == ("model", "1", "onnx")
    assert (cfg.track, cfg.host, cfg.port, cfg.cache_dir) == ("stable", "0.0.0.0", 8080, "/tmp/sluice-models")
    assert cfg.latency_buckets == DEFAULT_LATENCY_BUCKETS
    assert (cfg.fault_error_rate, cfg.fault_latency) == (0.0, 0.0)


def test_an_https_model_uri_needs_no_digest() -> None:
    assert Config.from_env({"MODEL_URI": "https://h/m.onnx"}).model_digest == ""


def test_the_format_comes_from_the_suffix_unless_given() -> None:
    assert Config.from_env({"MODEL_URI": "s3://b/m.joblib"}).model_format == "sklearn"
    assert Config.from_env({"MODEL_URI": "https://h/m?x=1", "MODEL_FORMAT": "ONNX"}).model_format == "onnx"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({}, "MODEL_URI"),
        ({"MODEL_URI": "/m/model.bin"}, "MODEL_FORMAT"),
        ({"MODEL_URI": "/m.onnx", "MODEL_FORMAT": "pytorch"}, "MODEL_FORMAT"),
        ({"MODEL_URI": "/m.onnx", "MODEL_DIGEST": "md5:abc"}, "MODEL_DIGEST"),
        ({"MODEL_URI": "/m.onnx", "SLUICE_TRACK": "blue"}, "SLUICE_TRACK"),
        ({"MODEL_URI": "/m.onnx", "PORT": "http"}, "PORT"),
        ({"MODEL_URI": "/m.onnx", "MODEL_NAME": "a/b"}, "MODEL_NAME"),
        ({"MODEL_URI": "/m.onnx", "SLUICE_LATENCY_BUCKETS": "0.1,0.05"}, "SLUICE_LATENCY_BUCKETS"),
        ({"MODEL_URI": "/m.onnx", "SLUICE_FEATURE_BUCKETS": "1,inf"}, "SLUICE_FEATURE_BUCKETS"),
        ({"MODEL_URI": "/m.onnx", "SLUICE_FAULT_ERROR_RATE": "1.5"}, "SLUICE_FAULT_ERROR_RATE"),
        ({"MODEL_URI": "/m.onnx", "SLUICE_FAULT_LATENCY": "-1"}, "SLUICE_FAULT_LATENCY"),
        ({"MODEL_URI": "/m.onnx", "SLUICE_ACCESS_LOG": "maybe"}, "SLUICE_ACCESS_LOG"),
        ({"MODEL_URI": "/m.onnx", "SLUICE_METRICS_PORT": "metrics"}, "SLUICE_METRICS_PORT"),
        ({"MODEL_URI": "/m.onnx", "SLUICE_MAX_MODEL_BYTES": "0"}, "SLUICE_MAX_MODEL_BYTES"),
        ({"MODEL_URI": "/m.onnx", "SLUICE_REQUEST_TIMEOUT": "0"}, "SLUICE_REQUEST_TIMEOUT"),
        ({"MODEL_URI": "http://h/m.onnx"}, "MODEL_DIGEST is required for a plain http://"),
        (
            {"MODEL_URI": "/m.onnx", "SLUICE_FALLBACK": "model", "SLUICE_FALLBACK_MODEL_URI": "HTTP://h/f.onnx"},
            "SLUICE_FALLBACK_MODEL_DIGEST is required",
        ),
    ],
)
def test_a_bad_setting_is_refused_naming_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        Config.from_env(env)


def test_a_pinned_digest_is_kept_in_lowercase() -> None:
    digest = "sha256:" + "AB" * 32
    assert Config.from_env({"MODEL_URI": "/m.onnx", "MODEL_DIGEST": digest}).model_digest == digest.lower()


def test_the_help_table_lists_every_contract_variable() -> None:
    text = help_table()
    for name in ("MODEL_NAME", "MODEL_VERSION", "MODEL_URI", "MODEL_FORMAT", "MODEL_DIGEST", "SLUICE_TRACK",
                 "PORT", "MODEL_CACHE_DIR", "SLUICE_FAULT_ERROR_RATE", "SLUICE_FAULT_LATENCY"):  # fmt: skip
        assert name in text


def test_every_setting_is_in_the_table_of_docs_serving_md() -> None:
    from pathlib import Path

    from sluice_serving.config import SETTINGS

    rows = [line for line in (Path(__file__).resolve().parents[3] / "docs" / "serving.md").read_text().splitlines()
            if line.startswith("| `")]  # fmt: skip

    def documented(env: str) -> bool:  # `NAME`, or `PREFIX_URI`, `_FORMAT` in one row
        prefix, _, suffix = env.rpartition("_")
        return any(f"`{env}`" in row or (f"`{prefix}_" in row and f"`_{suffix}`" in row) for row in rows)

    missing = [s.env for s in SETTINGS if not documented(s.env)]
    assert not missing, f"settings missing from docs/serving.md: {missing}"


def test_the_grpc_api_is_off_unless_its_port_is_set() -> None:
    assert Config.from_env({"MODEL_URI": "m.onnx"}).grpc_port is None
    assert Config.from_env({"MODEL_URI": "m.onnx", "SLUICE_GRPC_PORT": "8081"}).grpc_port == 8081
    with pytest.raises(ConfigError, match="SLUICE_GRPC_PORT"):
        Config.from_env({"MODEL_URI": "m.onnx", "SLUICE_GRPC_PORT": "70000"})
