"""Schema-driven fuzzing (schemathesis) of the web app's OpenAPI schema: no input gives a 5xx.

Bounded: FUZZ_EXAMPLES cases per operation, derandomized so runs repeat; the number of cases
run is checked at the end of the module (and printed with -s).
"""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")
pytest.importorskip("fastapi")

from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402

from attnlens.server import Limits, create_app  # noqa: E402
from conftest import tiny_model  # noqa: E402

FUZZ_EXAMPLES = 20
CASES: list[str] = []
STATUSES: list[int] = []


def _app():
    import atexit
    import shutil
    import tempfile
    from pathlib import Path

    from attnlens.server.models import load_served_model
    from server_helpers import save_tiny_mlm

    folder = Path(tempfile.mkdtemp(prefix="attnlens-fuzz-"))
    atexit.register(shutil.rmtree, folder, True)
    (folder / "atlas").mkdir()
    (folder / "atlas" / "scores.json").write_text("{}")
    mlm = load_served_model(str(save_tiny_mlm(folder / "mlm")))
    return create_app({"tiny-bert": tiny_model("bert"), "tiny-mlm": mlm}, results_dir=folder,
                      limits=Limits(max_chars=500, max_tokens=48, max_body_bytes=8192))


APP = _app()
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@schema.parametrize()
@settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_no_server_errors(case):
    CASES.append(case.operation.label)
    response = case.call()
    STATUSES.append(response.status_code)
    assert response.status_code < 500, (case.method, case.path, response.status_code, response.text[:300])
    not_a_server_error  # noqa: B018  (the same rule schemathesis's own check applies)


def test_fuzz_ran_a_bounded_number_of_cases():
    ops = sorted(set(CASES))
    from collections import Counter

    print(f"\nschemathesis: {len(CASES)} cases over {len(ops)} operations; statuses {dict(sorted(Counter(STATUSES).items()))}")
    assert len(ops) >= 9, ops
    assert any(200 <= s < 300 for s in STATUSES) and max(STATUSES) < 500
    assert 8 <= len(CASES) <= FUZZ_EXAMPLES * len(ops) * 2
