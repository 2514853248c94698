"""The pure parts of `make bench` (bench/): the synthetic exporter's series, py-spy profile folding, request
classification, quantiles and the doc's section markers."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO))

from bench import run  # noqa: E402
from bench.exporter import BAD_ERROR_FRACTION, Series  # noqa: E402
from bench.lab import requests_by_verb  # noqa: E402

from integration.operator_support import Request  # noqa: E402


def samples(series: Series) -> dict[tuple[str, ...], float]:
    out: dict[tuple[str, ...], float] = {}
    for family in text_string_to_metric_families(series.render().decode()):
        for sample in family.samples:
            labels = sample.labels
            key = (sample.name, labels["model"], labels["track"], labels.get("code", ""), labels.get("le", ""))
            out[key] = sample.value
    return out


def test_the_exporter_serves_the_model_servers_families_and_fails_bad_canaries_only_after_the_breach() -> None:
    series = Series(["a", "b"], {"b"}, {"stable": "1.0.0", "canary": "2.0.0"}, rate=10.0)
    series.started -= 10  # ten seconds of traffic
    before = samples(series)
    assert before[("sluice_serving_requests_total", "b", "canary", "200", "")] == pytest.approx(100, rel=0.05)
    assert not [key for key in before if key[3] == "500"], "no errors before the breach"
    assert before[("sluice_serving_request_duration_seconds_bucket", "a", "stable", "", "+Inf")] == pytest.approx(
        100, rel=0.05
    )

    series.breach()
    assert series.breach_at is not None
    series.breach_at -= 4  # the breach was four seconds ago
    after = samples(series)
    assert after[("sluice_serving_requests_total", "b", "canary", "500", "")] == pytest.approx(
        BAD_ERROR_FRACTION * 10 * 4, rel=0.05
    )
    for untouched in (("a", "canary"), ("b", "stable"), ("a", "stable")):
        assert ("sluice_serving_requests_total", *untouched, "500", "") not in after, untouched


def test_a_second_breach_keeps_the_first_moment() -> None:
    series = Series(["a"], {"a"}, {"canary": "2.0.0"}, rate=1.0)
    first = series.breach()
    time.sleep(0.01)
    assert series.breach() == first


def test_py_spy_stacks_fold_into_self_and_inclusive_shares(tmp_path: Path) -> None:
    raw = tmp_path / "profile.txt"
    raw.write_text(
        "process 1:main;run (asyncio/runners.py:1);reconcile (/x/src/sluice/handlers.py:10);"
        "dumps (json/__init__.py:3) 3\n"
        "process 1:main;run (asyncio/runners.py:1);reconcile (/x/src/sluice/handlers.py:10) 1\n"
    )
    folded = run.top_frames(raw)
    assert folded["samples"] == 4
    assert dict(folded["self"]) == {"dumps (json/__init__.py)": 75.0, "reconcile (sluice/handlers.py)": 25.0}
    assert dict(folded["sluice"]) == {"reconcile (sluice/handlers.py)": 100.0}
    assert run.top_frames(tmp_path / "missing.txt")["samples"] == 0


def test_requests_are_classified_as_object_reads_collection_reads_and_writes() -> None:
    verbs = requests_by_verb(
        [
            Request("GET", "/apis/sluice.dev/v1alpha1/namespaces/ns/modeldeployments/a"),
            Request("GET", "/apis/sluice.dev/v1alpha1/namespaces/ns/modeldeployments"),
            Request("GET", "/apis/apps/v1/deployments"),
            Request("GET", "/api/v1/namespaces/ns/services/a"),
            Request("PATCH", "/apis/apps/v1/namespaces/ns/deployments/a-stable"),
            Request("POST", "/api/v1/namespaces/ns/events"),
        ]
    )
    assert verbs == {"GET": 2, "LIST/WATCH": 2, "PATCH": 1, "POST": 1}


def test_quantiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert run.pct(values, 0.5) == 50
    assert run.pct(values, 0.99) == 99
    assert run.pct([3.0], 0.99) == 3


def test_a_section_is_replaced_between_its_markers_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text("head\n<!-- bench:scale:start -->\nold\n<!-- bench:scale:end -->\nkeep\n")
    monkeypatch.setattr(run, "DOC", doc)
    monkeypatch.setattr(run, "REPO", tmp_path)
    run.write_section("scale", "new figures")
    assert doc.read_text() == "head\n<!-- bench:scale:start -->\nnew figures\n<!-- bench:scale:end -->\nkeep\n"
    with pytest.raises(SystemExit):
        run.write_section("soak", "x")


def test_the_published_doc_has_every_sections_markers() -> None:
    text = (REPO / "docs" / "benchmarks.md").read_text()
    for name in run.SECTIONS:
        assert text.count(f"<!-- bench:{name}:start -->") == 1, name
        assert text.count(f"<!-- bench:{name}:end -->") == 1, name
    assert "<!-- bench-serving:start -->" in text
