"""Schema-driven fuzzing (schemathesis) of the web app's OpenAPI schema: no input gives a 5xx.

One test per operation, each against a fresh app (own capture store, queue and counters), so no
test depends on another having run. Bounded: at most FUZZ_EXAMPLES cases per operation,
derandomized so runs repeat; each test checks how many cases it ran (printed with -s).
"""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")
pytest.importorskip("fastapi")

from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from attnlens.server import Limits, create_app
from conftest import tiny_model
from server_helpers import save_tiny_mlm

FUZZ_EXAMPLES = 20
# Every operation of the schema (test_every_operation_is_fuzzed keeps this list complete).
OPERATIONS = [
    "GET /api/models", "GET /api/limits", "POST /api/capture", "GET /api/captures/{capture_id}/meta",
    "GET /api/captures/{capture_id}/buffers", "GET /api/captures/{capture_id}/{kind}/{layer}", "POST /api/compare",
    "POST /api/predict/fill-mask",
    "GET /api/results", "GET /results/{path}", "POST /api/search",
]
ALWAYS_OK = {"GET /api/models", "GET /api/limits", "GET /api/results"}  # no input that could be wrong


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The models (read-only, shared) and a results folder; each test builds its own app on them."""
    from attnlens.server.models import load_served_model

    folder = tmp_path_factory.mktemp("fuzz")
    (folder / "atlas").mkdir()
    (folder / "atlas" / "scores.json").write_text("{}")
    mlm = load_served_model(str(save_tiny_mlm(folder / "mlm")))
    return {"tiny-bert": tiny_model("bert"), "tiny-mlm": mlm}, folder


def fresh_schema(served):
    models, folder = served
    app = create_app(models, results_dir=folder, limits=Limits(max_chars=500, max_tokens=48, max_body_bytes=8192))
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def test_every_operation_is_fuzzed(served):
    schema = fresh_schema(served)
    assert sorted(result.ok().label for result in schema.get_all_operations()) == sorted(OPERATIONS)


@pytest.mark.parametrize("label", OPERATIONS)
def test_no_server_errors(served, label):
    method, path = label.split(" ", 1)
    operation = fresh_schema(served)[path][method]
    statuses: list[int] = []

    @given(case=operation.as_strategy())
    @settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def fuzz(case):
        response = case.call()
        statuses.append(response.status_code)
        assert response.status_code < 500, (case.method, case.path, response.status_code, response.text[:300])
        case.validate_response(response, checks=[not_a_server_error])  # schemathesis's own rule, also run

    fuzz()
    from collections import Counter

    print(f"\nschemathesis {label}: {len(statuses)} cases; statuses {dict(sorted(Counter(statuses).items()))}")
    assert 1 <= len(statuses) <= FUZZ_EXAMPLES * 2  # bounded (hypothesis may replay a failing case)
    if label in ALWAYS_OK:
        assert all(200 <= s < 300 for s in statuses), statuses
