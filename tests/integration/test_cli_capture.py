"""`attnlens capture` on the command line: summary, saved file, one-line errors with exit code 2."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np

from attnlens import Capture
from conftest import PAIR


def run_cli(*args, cwd=None):
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_VERBOSITY")}
    return subprocess.run([sys.executable, "-m", "attnlens", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=300)


def test_capture_prints_summary_and_saves(tmp_path):
    out = tmp_path / "run.npz"
    result = run_cli("capture", *PAIR, "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no loading bars, no warnings the user can do nothing about
    lines = result.stdout.splitlines()
    assert lines[0].startswith("all-MiniLM-L6-v2: 6 layers x 12 heads, 19 tokens")
    assert "straw ##berries" in lines[1]
    layer_lines = [line for line in lines if line.startswith("layer ")]
    assert len(layer_lines) == 6
    assert layer_lines[0].startswith("layer 0: h2 previous")  # the model's previous-token head
    cap = Capture.load(out)
    assert cap.attentions.shape == (6, 12, 19, 19)
    np.testing.assert_allclose(cap.attentions.sum(-1), 1.0, atol=1e-5)


def test_bad_inputs_exit_2_with_one_line(tmp_path):
    binary = tmp_path / "weights.bin"
    binary.write_bytes(bytes(range(256)))
    cases = [
        (["capture", "   "], "sentence A is empty"),
        (["capture", "ok", "--model", str(tmp_path / "nope")], "does not exist"),
        (["capture", "ok", "--model", str(tmp_path)], "no config.json"),
        (["capture", "ok", "--model", str(binary)], "is a file"),
        (["capture", " ".join(["word"] * 600)], "at most 512"),
    ]
    for args, message in cases:
        result = run_cli(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert message in result.stderr and "Traceback" not in result.stderr
