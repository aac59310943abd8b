"""The web app under load against the library called directly (the lower bound).

Work unit: one two-sentence capture plus all its view data (what the page fetches to show
every view). Server: `attnlens serve` (default model) in a subprocess on 127.0.0.1 with
--workers inference threads and --threads torch threads, driven by 1, 8 and 32 concurrent
clients (attnlens.server.loadgen, in this process), each for --seconds. Two library baselines,
in this process with the same torch threads, for the same kind of inputs:
- serial (the old baseline): attnlens.capture() + views.payload.build_payload() one after
  another on one thread;
- same workers: --workers threads each doing the same, one capture at a time per model (a
  lock, as the server holds while capturing: the hooks are per model) and build_payload
  outside it, as the server's inference threads do.
Prints p50 / p99 latency, requests/s, ratios to both baselines and CPU ms per request (CPU time
of the process doing the work per completed request: the fairest figure on a shared machine),
then the issue-14 targets against the serial (one-at-a-time) library: 32 clients >= 1.2x its
requests/s with 0 errors, 1 client p99 <= 1.3x its p99. With --rounds N every measurement runs N
times, the order reversed in odd rounds, and the best of each is kept (on a shared machine a burst
of someone else's load otherwise decides the ratio).

    python benchmarks/bench_server.py [--seconds 20] [--workers 2] [--threads 1] [--rounds 1] [--quick]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import attnlens
from attnlens.server.loadgen import LoadResult, run_load, two_sentences
from attnlens.views.payload import build_payload

ROOT = Path(__file__).resolve().parents[1]


def process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a process (Linux /proc), None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def library_baseline(lm, seconds: float, workers: int = 1) -> LoadResult:
    """capture + build_payload in this process (no HTTP, no queue) on `workers` threads.

    workers=1 is the old serial baseline. With more, captures on the model are one at a time (a lock,
    as in the server) and build_payload runs outside it, on each thread.
    """
    lock, record = threading.Lock(), threading.Lock()
    result = LoadResult(workers, 0.0)

    def worker(index: int, stop_at: float) -> None:
        n = 0
        while time.monotonic() < stop_at:
            t0 = time.perf_counter()
            with lock:
                cap = attnlens.capture(*two_sentences(index, n), model=lm)
            meta, buffers = build_payload(cap)
            elapsed = time.perf_counter() - t0
            with record:
                result.latencies_s.append(elapsed)
                result.bytes_received += sum(len(b) for b in buffers.values())
            n += 1

    for n in range(3):
        build_payload(attnlens.capture(*two_sentences(999, n), model=lm))  # warm-up
    cpu0 = time.process_time()  # every thread of this process
    start = time.monotonic()
    if workers == 1:
        worker(0, start + seconds)
    else:
        threads = [threading.Thread(target=worker, args=(i, start + seconds)) for i in range(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
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


def cpu_ms(r: LoadResult) -> float | None:
    return None if r.cpu_s is None else 1000 * r.cpu_s / max(1, r.requests)


def row(label: str, r: LoadResult, serial: LoadResult, same: LoadResult) -> str:
    cpu = cpu_ms(r)
    cpu_text = f"{cpu:>10.0f} {cpu / cpu_ms(same):>8.2f}x" if cpu is not None else f"{'n/a':>10} {'':>9}"
    return (f"{label:<28} {r.requests:>6} {r.per_second:>7.1f} {r.percentile_ms(50):>8.1f} {r.percentile_ms(99):>8.1f}"
            f"  {r.per_second / serial.per_second:>7.2f}x {r.percentile_ms(50) / serial.percentile_ms(50):>7.2f}x"
            f"  {r.per_second / same.per_second:>7.2f}x {r.percentile_ms(50) / same.percentile_ms(50):>7.2f}x"
            f"  {sum(r.errors.values()):>6} {cpu_text}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="Duration of each measurement.")
    parser.add_argument("--workers", type=int, default=2, help="Server inference threads (and library threads).")
    parser.add_argument("--threads", type=int, default=1, help="Torch threads, the same for the library and server.")
    parser.add_argument("--rounds", type=int, default=1, help="Measure everything this many times; keep the best.")
    parser.add_argument("--quick", action="store_true", help="--seconds 4")
    args = parser.parse_args()
    if args.quick:
        args.seconds = 4.0

    import torch

    torch.set_num_threads(args.threads)
    lm = attnlens.load_model()
    proc, url = start_server(args.workers, args.threads)
    best: dict = {}

    def keep(key, r: LoadResult) -> None:  # best of the rounds: most requests/s, and its own latencies
        if key not in best or r.per_second > best[key].per_second:
            best[key] = r

    try:
        run_load(url, 2, 3.0)  # warm-up
        for rnd in range(max(1, args.rounds)):
            order = ["serial", "same", 1, 8, 32]
            for what in order if rnd % 2 == 0 else order[::-1]:
                if what == "serial":
                    keep(what, library_baseline(lm, args.seconds))
                elif what == "same":
                    keep(what, library_baseline(lm, args.seconds, args.workers))
                else:
                    cpu0 = process_cpu_s(proc.pid)
                    r = run_load(url, what, args.seconds)
                    cpu1 = process_cpu_s(proc.pid)
                    r.cpu_s = None if cpu0 is None or cpu1 is None else cpu1 - cpu0
                    keep(what, r)
    finally:
        proc.terminate()
        proc.wait(10)
    serial, same = best["serial"], best["same"]
    runs = {clients: best[clients] for clients in (1, 8, 32)}
    print(f"capture + view data of two sentences ({attnlens.DEFAULT_MODEL}), {args.seconds:g} s each, best of "
          f"{max(1, args.rounds)} round(s), {os.cpu_count()} CPUs, torch threads={args.threads}, "
          f"server workers={args.workers}, load average at the end {os.getloadavg()[0]:.1f}")
    print(f"{'':<28} {'':>6} {'':>7} {'':>8} {'':>8}  {'vs serial library':>17}  {'vs library, same workers':>24}"
          f"  {'':>6} {'':>10}")
    print(f"{'':<28} {'done':>6} {'req/s':>7} {'p50 ms':>8} {'p99 ms':>8}  {'req/s':>8} {'p50':>8}  {'req/s':>8} "
          f"{'p50':>8}  {'errors':>6} {'CPU ms/req':>10} {'vs same':>9}")
    print(row("library, serial (old base)", serial, serial, same))
    print(row(f"library, {args.workers} workers", same, serial, same))
    for clients, r in runs.items():
        print(row(f"server, {clients} clients", r, serial, same))
        if r.errors:
            print(f"    errors: {dict(r.errors)}")
    print("CPU ms/req: CPU time of the process doing the work (this one for the library, the server's for the server)"
          " per completed request; 'vs same' divides by the library with the same workers. Wall-clock figures depend"
          " on what else the machine runs; the load generator's clients run in this process, on the same CPUs as"
          " the server.")
    print(f"bytes of view data per request: {runs[1].bytes_received / max(1, runs[1].requests):,.0f} over HTTP "
          f"(payload buffers alone {serial.bytes_received / max(1, serial.requests):,.0f})")
    print("targets against the library one at a time (serial):")
    for clients, r in runs.items():
        print(f"  server, {clients:>2} clients: {r.per_second:6.1f} req/s = {r.per_second / serial.per_second:5.2f}x "
              f"the library's {serial.per_second:.1f}; p99 {r.percentile_ms(99):7.1f} ms = "
              f"{r.percentile_ms(99) / serial.percentile_ms(99):5.2f}x the library's "
              f"{serial.percentile_ms(99):.1f} ms; errors {sum(r.errors.values())}")
    top, one = runs[32], runs[1]
    met = top.per_second >= 1.2 * serial.per_second and not top.errors
    print(f"  32 clients >= 1.2x the library's req/s with 0 errors: {top.per_second / serial.per_second:.2f}x, "
          f"{sum(top.errors.values())} errors -> {'met' if met else 'NOT met'}")
    ratio = one.percentile_ms(99) / serial.percentile_ms(99)
    print(f"  1 client p99 <= 1.3x the library's p99: {ratio:.2f}x -> {'met' if ratio <= 1.3 else 'NOT met'}")


if __name__ == "__main__":
    main()
