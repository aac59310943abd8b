"""`attnlens view`: which files it writes (with --png and no -o, only the picture)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from browser_fixtures import require_browser
from conftest import PAIR

SRC = Path(__file__).resolve().parents[2] / "src"


def run_view(*args):
    from attnlens.cli import commands  # noqa: F401  (registers the commands)
    from attnlens.cli.app import app

    result = CliRunner().invoke(app, ["view", *PAIR, *args])
    assert result.exit_code == 0, result.output
    return result.output


def run_view_process(folder: Path, *args) -> str:
    """The command in its own process, as a user runs it (Playwright's sync API cannot run inside the
    event loop that the session's browser tests keep in this process)."""
    env = dict(os.environ, PYTHONPATH=str(SRC))
    done = subprocess.run([sys.executable, "-m", "attnlens", "view", *PAIR, *args], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_png_without_output_writes_no_page(tmp_path):
    require_browser()
    output = run_view_process(tmp_path, "--png", "head.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["head.png"]  # no attnlens_view.html in the current folder
    assert (tmp_path / "head.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "head.png" in output and ".html" not in output
    # with -o the page is wanted too
    run_view_process(tmp_path, "--png", "model.png", "--png-view", "model", "-o", "page.html")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["head.png", "model.png", "page.html"]


def test_without_png_the_page_goes_to_the_default_name(tmp_path, monkeypatch, default_model):
    monkeypatch.chdir(tmp_path)
    output = run_view("--text", "head")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["attnlens_view.html"]
    assert "attnlens_view.html" in output and "head view: layer 0" in output
