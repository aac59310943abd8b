"""The web app under load against the library called directly (the lower bound).

Work unit: one two-sentence capture plus all its view data (what the page fetches to show
every view). Server: `attnlens serve` (default model) in a subprocess on 127.0.0.1, driven
by 1, 8 and 32 concurrent clients (attnlens.server.loadgen), each for --seconds. Baseline:
attnlens.capture() + views.payload.build_payload() one after another in this process, for
the same inputs. Prints p50 / p99 latency, requests/s and the ratios to the baseline.

    python benchmarks/bench_server.py [--seconds 20] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import attnlens  # noqa: E402
from attnlens.server.loadgen import LoadResult, run_load, two_sentences  # noqa: E402
from attnlens.views.payload import build_payload  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a process (Linux /proc), None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def library_baseline(seconds: float) -> LoadResult:
    """capture + build_payload, serially, in this process (no HTTP, no queue)."""
    lm = attnlens.load_model()
    for n in range(3):
        build_payload(attnlens.capture(*two_sentences(999, n), model=lm))  # warm-up
    result = LoadResult(1, 0.0)
    cpu0 = time.process_time()
    start = time.monotonic()
    n = 0
    while time.monotonic() - start < seconds:
        t0 = time.perf_counter()
        meta, buffers = build_payload(attnlens.capture(*two_sentences(0, n), model=lm))
        result.latencies_s.append(time.perf_counter() - t0)
        result.bytes_received += sum(len(b) for b in buffers.values())
        n += 1
    result.seconds = time.monotonic() - start
    result.cpu_s = time.process_time() - cpu0
    return result


def start_server(workers: int, threads: int) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-m", "attnlens", "serve", "--port", "0", "--workers", str(workers),
                             "--queue", "64", "--timeout", "120", "--threads", str(threads)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    for line in proc.stdout:
        m = re.search(r"on (http://127\.0\.0\.1:\d+)/", line)
        if m:
            return proc, m.group(1)
    proc.kill()
    raise SystemExit("attnlens serve did not start")


def row(label: str, r: LoadResult, base: LoadResult) -> str:
    cpu = getattr(r, "cpu_s", None)
    cpu_ms = f"{1000 * cpu / max(1, r.requests):>8.0f}" if cpu is not None else f"{'n/a':>8}"
    return (f"{label:<24} {r.requests:>6} {r.per_second:>8.1f} {r.percentile_ms(50):>9.1f} {r.percentile_ms(99):>9.1f}"
            f" {r.per_second / base.per_second:>9.2f}x {r.percentile_ms(50) / base.percentile_ms(50):>8.2f}x"
            f"  {sum(r.errors.values()):>6} {cpu_ms}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="Duration of each measurement.")
    parser.add_argument("--workers", type=int, default=2, help="Server inference threads.")
    parser.add_argument("--threads", type=int, default=1, help="Torch threads, the same for the library and the server.")
    args = parser.parse_args()

    import torch  # noqa: PLC0415

    torch.set_num_threads(args.threads)
    base = library_baseline(args.seconds)
    proc, url = start_server(args.workers, args.threads)
    try:
        run_load(url, 2, 3.0)  # warm-up
        runs = {}
        for clients in (1, 8, 32):
            cpu0 = process_cpu_s(proc.pid)
            runs[clients] = run_load(url, clients, args.seconds)
            cpu1 = process_cpu_s(proc.pid)
            runs[clients].cpu_s = None if cpu0 is None or cpu1 is None else cpu1 - cpu0
    finally:
        proc.terminate()
        proc.wait(10)
    print(f"capture + view data of two sentences ({attnlens.DEFAULT_MODEL}), {args.seconds:g} s each, "
          f"{os.cpu_count()} CPUs, torch threads={args.threads}, server workers={args.workers}")
    print(f"{'':<24} {'done':>6} {'req/s':>8} {'p50 ms':>9} {'p99 ms':>9} {'req/s vs':>10} {'p50 vs':>9}  {'errors':>6} {'CPU ms/req':>10}")
    print(row("library, in process", base, base))
    for clients, r in runs.items():
        print(row(f"server, {clients} clients", r, base))
        if r.errors:
            print(f"    errors: {dict(r.errors)}")
    print("CPU ms/req: CPU time of the process doing the work (this one for the library, the server's for the server)"
          " per completed request; wall-clock figures depend on what else the machine runs.")
    print(f"bytes of view data per request: {runs[1].bytes_received / max(1, runs[1].requests):,.0f} over HTTP "
          f"(payload buffers alone {base.bytes_received / max(1, base.requests):,.0f})")


if __name__ == "__main__":
    main()
