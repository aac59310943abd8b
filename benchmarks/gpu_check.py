"""The cuda paths of attnlens on one GPU, in under 8 minutes (run through benchmarks/gpu_check.sh).

Parts (--parts, all by default), each printed as it finishes:
- capture: the default model on the GPU, fp32 and under bf16 autocast, against the same inputs
  captured on the CPU in fp32 (attention, queries, keys; a padded batch of pairs and single
  sentences); the tolerances are printed beside the measured differences, and a part fails when
  they are exceeded;
- server: one capture over HTTP from an app serving the GPU model, its view data against the CPU's;
- pretrain: `attnlens pretrain --device cuda` for --seconds of training per size (default mini and base),
  tokens/s from its metrics.jsonl, and model FLOPs utilisation: achieved model FLOP/s over the GPU's
  dense bf16 peak (the trainer autocasts to bf16 on cuda), the peak from the device name
  (PEAK_TFLOPS) or the env var ATTNLENS_GPU_PEAK_TFLOPS;
- atlas: score_pairs tokens/s on the GPU against a bare forward of the same model over the same
  length-sorted batches (as benchmarks/bench_atlas.py does on the CPU).

`--device cpu --smoke` runs every part on the CPU with small sizes, to prove the code runs where no
GPU is. Without a CUDA device `--device cuda` prints one line and exits with status 2.

    python benchmarks/gpu_check.py [--device cuda] [--parts capture,server,pretrain,atlas] [--seconds 120]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch

# dense (no sparsity) bf16 tensor-core peaks, TFLOP/s, from the vendors' data sheets; first match wins
PEAK_TFLOPS = (
    ("H200", 989.0), ("GH200", 989.0), ("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.0), ("H800", 989.0),
    ("A100", 312.0), ("A800", 312.0), ("L40S", 362.0), ("L40", 181.0), ("L4", 121.0), ("A10G", 70.0),
    ("A10", 125.0), ("RTX 6000 Ada", 364.0), ("A6000", 155.0),
)
INPUTS = [
    ("I went to the store.", "At the store, I bought fresh strawberries."),
    ("The cat sat on the mat because it was warm.", None),
    ("Attention heads look at other tokens.", "Some look at the previous one, some at [SEP]."),
    ("A much longer sentence, with commas, numbers like 42 and 1999, and several clauses that keep going for a "
     "while before it finally ends.", "Short B."),
    ("Hi.", None),
]
# |gpu - cpu fp32| bounds: attention weights absolute; queries / keys relative to the largest |value|
TOLERANCES = {"fp32": {"attention": 1e-4, "qk": 1e-4}, "bf16": {"attention": 5e-2, "qk": 3e-2}}


def say(line: str) -> None:
    print(line, flush=True)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def peak_tflops(device: str) -> tuple[float | None, str]:
    """(dense bf16 peak TFLOP/s, where it came from) for `device`."""
    if os.environ.get("ATTNLENS_GPU_PEAK_TFLOPS"):
        return float(os.environ["ATTNLENS_GPU_PEAK_TFLOPS"]), "ATTNLENS_GPU_PEAK_TFLOPS"
    if not device.startswith("cuda"):
        return None, "no peak for the CPU"
    name = torch.cuda.get_device_name(torch.device(device))
    for key, value in PEAK_TFLOPS:
        if key.lower() in name.lower():
            return value, f"table entry {key!r} for {name!r}"
    return None, f"{name!r} is not in the table; set ATTNLENS_GPU_PEAK_TFLOPS"


def differences(gpu, cpu) -> dict:
    """Largest |gpu - cpu| of attention (absolute) and of q / k (relative to the largest |cpu value|)."""
    att = max(float(np.abs(g.attentions - c.attentions).max()) for g, c in zip(gpu, cpu, strict=True))
    qk = max(float(np.abs(getattr(g, n) - getattr(c, n)).max() / max(1e-12, np.abs(getattr(c, n)).max()))
             for g, c in zip(gpu, cpu, strict=True) for n in ("queries", "keys"))
    mean_att = float(np.mean([np.abs(g.attentions - c.attentions).mean() for g, c in zip(gpu, cpu, strict=True)]))
    return {"attention": att, "qk": qk, "attention_mean": mean_att}


def part_capture(device: str, smoke: bool) -> bool:
    from attnlens import capture_batch, load_model

    cpu_lm = load_model()
    lm = load_model(device=device)
    reference = capture_batch(cpu_lm, INPUTS, batch_size=8)  # one padded batch, as on the GPU
    ok = True
    for precision in ("fp32", "bf16"):
        if precision == "bf16" and not device.startswith("cuda"):
            autocast = torch.autocast("cpu", dtype=torch.bfloat16)  # smoke: the same code path, on the CPU
        else:
            autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=precision == "bf16")
        with autocast:
            got = capture_batch(lm, INPUTS, batch_size=8)
        tokens_ok = all(g.tokens == c.tokens for g, c in zip(got, reference, strict=True))
        d, tol = differences(got, reference), TOLERANCES[precision]
        passed = tokens_ok and d["attention"] <= tol["attention"] and d["qk"] <= tol["qk"]
        ok &= passed
        say(f"capture {precision:<4} on {device}: max |d attention| {d['attention']:.2e} (tolerance "
            f"{tol['attention']:.0e}), mean {d['attention_mean']:.1e}; max |d q,k| / max |q,k| {d['qk']:.2e} "
            f"(tolerance {tol['qk']:.0e}); tokens {'same' if tokens_ok else 'DIFFER'} -> "
            f"{'ok' if passed else 'FAIL'}")
    return ok


def part_server(device: str, smoke: bool) -> bool:
    from fastapi.testclient import TestClient

    from attnlens import capture, load_model
    from attnlens.server import create_app
    from attnlens.views.payload import decode_payload

    lm = load_model(device=device)
    expected = capture(*INPUTS[0], model=load_model())
    with TestClient(create_app({"gpu": lm})) as client:
        t0 = time.perf_counter()
        body = client.post("/api/capture", json={"text_a": INPUTS[0][0], "text_b": INPUTS[0][1]}).json()
        meta = client.get(f"/api/captures/{body['id']}/meta").json()
        buffers = {name: client.get(f"/api/captures/{body['id']}/{name}").content for name in meta["buffers"]}
        ms = 1000 * (time.perf_counter() - t0)
    decoded = decode_payload(meta, buffers)
    att = float(np.abs(decoded["attentions"] - expected.attentions).max())
    q = float(np.abs(decoded["queries"] - expected.queries).max() / np.abs(expected.queries).max())
    passed = meta["tokens"] == expected.tokens and att <= 0.01 and q <= 2e-3
    say(f"server on {device}: capture + view data over HTTP in {ms:.0f} ms; max |d attention| {att:.1e} "
        f"(tolerance 1e-2: uint8/float16 view data), max |d q| / max |q| {q:.1e} (tolerance 2e-3) -> "
        f"{'ok' if passed else 'FAIL'}")
    return passed


def train_flops_per_token(run: dict) -> float:
    """Model FLOPs per real token of one training step (forward + backward = 3x forward matmuls).

    Per layer and token: 8 d^2 (q, k, v, output projections) + 4 d I (feed-forward) + 4 T d (scores and
    weighted sum over T = seq_len keys); the MLM head (d^2 + d V) only at the masked positions (mask_prob),
    a decoder's LM head at every token. Embeddings, norms, softmax and the NSP head are left out.
    """
    m, cfg = run["model"], run["config"]
    d = m.get("hidden_size") or m["n_embd"]
    layers = m.get("num_hidden_layers") or m["n_layer"]
    inner = m.get("intermediate_size") or m.get("n_inner") or 4 * d
    vocab, seq = m["vocab_size"], cfg["seq_len"]
    head_share = 1.0 if cfg.get("objective", "mlm-nsp") == "clm" else cfg["mask_prob"]
    forward = 2 * (layers * (4 * d * d + 2 * d * inner + 2 * seq * d) + head_share * (d * d + d * vocab))
    return 3 * forward


def read_metrics(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # a line being written
            pass
    return [r for r in rows if r.get("kind") == "train"]


def pretrain_once(size: str, device: str, seconds: float, work: Path, vocab: Path | None, smoke: bool) -> dict:
    """Run `attnlens pretrain` until it has trained `seconds` (its own train clock), then stop it.

    smoke: 2 steps of batch 4 x 32 tokens, run to the end (the trainer logs every 50 steps and at its last).
    """
    run_dir = work / f"run-{size}"
    cmd = [sys.executable, "-m", "attnlens", "pretrain", "--out", str(run_dir), "--size", size, "--device", device,
           "--steps", "2" if smoke else "1000000", "--eval-every", "1000000", "--save-every", "1000000",
           "--no-progress"]
    if vocab is not None:
        cmd += ["--vocab", str(vocab)]
    if smoke:
        cmd += ["--batch-size", "4", "--seq-len", "32"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    log = open(work / f"pretrain-{size}.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    started = time.monotonic()
    try:
        while proc.poll() is None:
            time.sleep(1.0)
            rows = read_metrics(run_dir)
            if rows and rows[-1]["minutes"] * 60 >= seconds and not smoke:
                break
            if time.monotonic() - started > seconds + (900 if smoke else 180):  # start-up took too long
                break
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()
    rows = read_metrics(run_dir)
    if not rows:
        tail = (work / f"pretrain-{size}.log").read_text()[-1500:]
        raise RuntimeError(f"pretrain --size {size} logged no training step; its output ends:\n{tail}")
    run = json.loads((run_dir / "run.json").read_text())
    rates = [r["tokens_per_s"] for r in rows[1:]] or [rows[0]["tokens_per_s"]]  # the first window warms up
    return {"size": size, "steps": rows[-1]["step"], "train_s": rows[-1]["minutes"] * 60,
            "tokens_per_s": statistics.median(rates), "flops_per_token": train_flops_per_token(run),
            "batch": run["config"]["batch_size"], "seq_len": run["config"]["seq_len"], "run_dir": run_dir}


def part_pretrain(device: str, smoke: bool, seconds: float, sizes: list[str]) -> bool:
    peak, source = peak_tflops(device)
    with tempfile.TemporaryDirectory() as tmp:
        work, vocab = Path(tmp), None
        for size in sizes:
            r = pretrain_once(size, device, seconds, work, vocab, smoke)
            vocab = vocab or r["run_dir"] / "tokenizer" / "vocab.txt"  # the next size reuses the WordPiece vocab
            achieved = r["tokens_per_s"] * r["flops_per_token"]
            mfu = f"{100 * achieved / (peak * 1e12):.1f}% of {peak:g} TFLOP/s bf16 peak ({source})" if peak else \
                f"n/a ({source})"
            say(f"pretrain --size {size} on {device}: {r['steps']} steps in {r['train_s']:.0f} s of training, batch "
                f"{r['batch']} x seq {r['seq_len']}: {r['tokens_per_s']:,.0f} tokens/s (median 50-step window), "
                f"{r['flops_per_token'] / 1e6:.1f} MFLOP/token -> {achieved / 1e12:.2f} TFLOP/s, MFU {mfu}")
    return True


def bare_forward(lm, pairs, batch_size: int) -> int:
    """bench_atlas's bare loop (the same baseline), synchronised with the device; returns the real tokens."""
    from bench_atlas import bare_forward as bare_loop  # noqa: PLC0415  (a sibling script: benchmarks/ is on sys.path)

    tokens = bare_loop(lm, pairs, batch_size)
    sync(str(lm.device))
    return tokens


def part_atlas(device: str, smoke: bool, pairs_n: int, batch_size: int) -> bool:
    from attnlens import load_model
    from attnlens.analysis.run import resolve_pairs, score_pairs

    lm = load_model(device=device)
    pairs, _ = resolve_pairs("default", pairs_n)
    bare_forward(lm, pairs[:batch_size * 2], batch_size)  # warm-up: kernels, allocator
    score_pairs(lm, pairs[:batch_size * 2], batch_size=batch_size)
    bare, atlas, tokens = [], [], 0
    for _ in range(2):  # interleaved, best of 2
        t0 = time.perf_counter()
        tokens = bare_forward(lm, pairs, batch_size)
        bare.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        stats = score_pairs(lm, pairs, batch_size=batch_size)
        sync(device)
        atlas.append(time.perf_counter() - t0)
    say(f"atlas on {device}: {stats.inputs} pairs, {tokens} tokens, batch {batch_size}: bare forward "
        f"{tokens / min(bare):,.0f} tokens/s, atlas {tokens / min(atlas):,.0f} tokens/s, ratio "
        f"{min(bare) / min(atlas):.2f}x")
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (cuda:N) or cpu (with --smoke: prove the code runs)")
    parser.add_argument("--parts", default="capture,server,pretrain,atlas")
    parser.add_argument("--seconds", type=float, default=120.0, help="training seconds per pretraining size")
    parser.add_argument("--sizes", default="mini,base", help="pretraining sizes")
    parser.add_argument("--pairs", type=int, default=2000, help="atlas pairs")
    parser.add_argument("--batch-size", type=int, default=32, help="atlas batch size")
    parser.add_argument("--smoke", action="store_true",
                        help="small sizes: --pairs 64, pretraining 2 steps of batch 4 x 32 per size")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_check: no CUDA device (torch.cuda.is_available() is False); run it on a machine with a GPU",
              file=sys.stderr)
        return 2
    if args.smoke:
        args.pairs = min(args.pairs, 64)
    where = torch.cuda.get_device_name(torch.device(args.device)) if args.device.startswith("cuda") else "CPU"
    say(f"gpu_check on {args.device} ({where}), torch {torch.__version__}"
        + (f", CUDA {torch.version.cuda}, TF32 matmul {torch.backends.cuda.matmul.allow_tf32}"
           if args.device.startswith("cuda") else "") + (", smoke" if args.smoke else ""))
    parts = {
        "capture": lambda: part_capture(args.device, args.smoke),
        "server": lambda: part_server(args.device, args.smoke),
        "pretrain": lambda: part_pretrain(args.device, args.smoke, args.seconds, args.sizes.split(",")),
        "atlas": lambda: part_atlas(args.device, args.smoke, args.pairs, args.batch_size),
    }
    unknown = [name for name in args.parts.split(",") if name not in parts]
    if unknown:
        print(f"gpu_check: unknown part(s) {', '.join(unknown)}; choose from {', '.join(parts)}", file=sys.stderr)
        return 2
    failed = []
    for name in args.parts.split(","):
        t0 = time.perf_counter()
        try:
            ok = parts[name]()
        except Exception as exc:  # noqa: BLE001  (report every part, then fail)
            say(f"{name}: ERROR {type(exc).__name__}: {exc}")
            ok = False
        say(f"  ({name}: {time.perf_counter() - t0:.0f} s)")
        if not ok:
            failed.append(name)
    say("gpu_check: all parts passed" if not failed else f"gpu_check: FAILED: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
