"""Server-side apply bodies (application/apply-patch+yaml) are JSON the API server's YAML decoder reads back exactly.

Found by the generated-manifest reliability test (docs/reliability.md): an admitted ModelDeployment whose strings
held characters beyond the BMP or C1 control characters made every apply of its children fail with 400.
"""

from __future__ import annotations

import json

import yaml
from hypothesis import given
from hypothesis import strategies as st

from sluice.adapters.kube import yaml_safe_json

TEXT = st.text(st.characters(codec="utf-8"))


def test_characters_yaml_refuses_or_folds_are_escaped() -> None:
    body = {"uri": 'https://m.example.com/\U0001f600/\U000faa42\x84\x7f\x85\u2028\ufeff"\\ud83d'}
    encoded = yaml_safe_json(body)
    assert b"\\ud83d\\ude00" not in encoded  # no surrogate pair
    assert "\U0001f600".encode() in encoded
    for escape in (b"\\u0084", b"\\u007f", b"\\u0085", b"\\u2028", b"\\ufeff"):
        assert escape in encoded
    assert yaml.safe_load(encoded.decode()) == body


@given(st.dictionaries(TEXT, st.one_of(TEXT, st.lists(TEXT, max_size=3)), max_size=4))
def test_any_body_reads_back_the_same_as_json_and_as_yaml(body: dict[str, object]) -> None:
    encoded = yaml_safe_json(body)
    assert json.loads(encoded) == body
    assert yaml.safe_load(encoded.decode()) == body
