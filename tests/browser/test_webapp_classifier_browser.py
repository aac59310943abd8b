"""Fine-tuned classifiers in the web app, in headless chromium against a real `attnlens serve --model RUN_DIR`:
the picker names them as classifiers, a capture shows the predicted label and class probabilities (those of
`attnlens.classify`) beside the views, a class name with markup shows as text, a token classifier shows each
word's tag, and the Results tab lists the fine-tuning runs with their held-out scores."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from classifier_helpers import GOOD, finetuned_classifiers
from server_helpers import running_server

pytest.importorskip("fastapi")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_webapp_browser import AppProbe


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    runs = finetuned_classifiers(tmp_path_factory)
    args = ["--model", str(runs["sequence"]), "--model", str(runs["token"]), "--results", str(runs["results"])]
    with running_server(args, cwd=runs["results"]) as url:
        yield {"url": url, **runs}


def on_page(browser_thread, server, fn):
    def job(browser):
        page = browser.new_page(viewport={"width": 1400, "height": 1200})
        try:
            return fn(AppProbe(page, server["url"]))
        finally:
            page.close()

    return browser_thread.run(job)


def capture_with(p, model: str, text: str) -> None:
    """Pick `model` in Explore's picker, type `text`, show it, and wait for the views and the prediction."""
    page = p.page
    page.select_option("#explore-form select[name=model]", model)
    page.fill("#explore-form input[name=a]", text)
    page.click("#explore-form button[type=submit]")
    p.wait_drawn("#explore-view")
    page.wait_for_selector("#prediction:not([hidden]) h3", timeout=30000)


def test_picked_classifier_shows_its_prediction_as_text(browser_thread, server):
    from attnlens import classify

    expected = classify("a good dog", model=server["sequence"])
    assert expected.label == GOOD  # the class name with markup is the one shown

    def body(p):
        page = p.page
        page.goto(server["url"])
        page.wait_for_selector("body[data-ready]")
        option = page.locator(f"#explore-form option[value='{server['sequence']}']").inner_text()
        assert f"sequence classifier: {GOOD} / plain" in option
        capture_with(p, str(server["sequence"]), "a good dog")
        pane = page.locator("#prediction")
        assert pane.locator(".app-prediction-label").inner_text() == GOOD  # as text, not as markup
        assert pane.locator("b").count() == 0
        rows = [r.split("\t") for r in pane.locator("tr").all_inner_texts()]
        shown = {cells[0]: float(cells[-1]) for cells in rows}
        assert shown == pytest.approx(expected.probabilities, abs=6e-4)  # shown to 3 decimals
        assert pane.locator("meter").count() == 2
        assert "sequence classifier" in pane.locator("h3").inner_text()
        capture_with(p, str(server["token"]), "a strawberries good dog")
        tags = classify("a strawberries good dog", model=server["token"]).tags
        assert pane.locator(".app-tag-label").all_inner_texts() == tags and tags[2] == "G" and tags[0] == "O"
        assert [t.split("\n")[0] for t in pane.locator(".app-tag").all_inner_texts()] == \
            ["a", "strawberries", "good", "dog"]
        assert p.errors == [] and p.offsite() == []

    on_page(browser_thread, server, body)


def test_results_tab_lists_finetuning_runs(browser_thread, server):
    def body(p):
        page = p.page
        page.goto(server["url"] + "?tab=results")
        page.wait_for_selector("#finetunes-list li strong")
        items = {li.split(" ", 1)[0]: li for li in page.locator("#finetunes-list li").all_inner_texts()}
        assert set(items) == {"pair", "sequence", "token"}
        assert "task sequence.jsonl (sequence, 2 classes), steps 60/60: held-out accuracy 1.000" in items["sequence"]
        assert "majority baseline 0.500" in items["sequence"]
        assert page.locator("#runs-list li").all_inner_texts() == ["none found"]  # no pretraining runs here
        assert p.errors == [] and p.offsite() == []

    on_page(browser_thread, server, body)
