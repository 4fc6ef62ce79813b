"""fastseq side by side with torch and onnxruntime: same process, same weights, same threads.

    python bench/run.py [--quick] [--threads 1,2] [--cases a,b] [--json out.json]

Prints a table (median µs, peer/fastseq ratios, GFLOP/s, fraction of this machine's fp32
peak measured in the same run, max |a - b| / max(1, |b|) between implementations) and writes one
JSON object per line: a "meta" line, a "peak" line per thread count, an "rss" line, and a
"case" line per case, implementation and thread count. See bench/README.md.
"""
import argparse
import datetime
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peers import GATES, MAKERS, Skip, make_module  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOL = 1e-5          # |a - b| > TOL * max(1, |b|) anywhere is flagged as a mismatch


@dataclass(frozen=True)
class Case:
    name: str
    cell: str            # "LSTM" | "GRU" | "RNN" | "FastRNN" | "FastGRNN" (see peers.GATES)
    I: int
    H: int
    B: int = 1
    T: int = 100         # sequence length; for a stream case, steps per timed repetition
    stream: bool = False  # one call per step, state carried; µs reported per step
    train: bool = False   # one training step over the sequence: forward, backward, Adam
    #                       (per-step linear head + MSE; peers.py); µs per training step

    def flops(self):
        """FLOPs of one timed unit (a step if streaming, else the sequence); matmuls only.
        A training step counts 3x the forward's (forward, weight and input/state grads)."""
        G = GATES[self.cell]
        per_row = 2 * self.I * G * self.H + 2 * self.H * G * self.H
        return per_row * self.B * (1 if self.stream else self.T) * (3 if self.train else 1)


CASES = [
    Case("stream_lstm_h128", "LSTM", I=40, H=128, stream=True),
    Case("stream_gru_h64", "GRU", I=40, H=64, stream=True),
    Case("tiny_lstm_h32_T50", "LSTM", I=16, H=32, T=50),
    Case("seq_lstm_h256_T100", "LSTM", I=64, H=256),
    Case("seq_gru_h256_T100", "GRU", I=64, H=256),
    Case("seq_rnn_h256_T100", "RNN", I=64, H=256),
    Case("seq_lstm_h1024_T100", "LSTM", I=256, H=1024),
    Case("batch_lstm_h256_B64_T100", "LSTM", I=64, H=256, B=64),
    Case("batch_gru_h512_B32_T50", "GRU", I=128, H=512, B=32, T=50),
    Case("stream_fastrnn_h128", "FastRNN", I=40, H=128, stream=True),
    Case("stream_fastgrnn_h128", "FastGRNN", I=40, H=128, stream=True),
    Case("seq_fastrnn_h128_T100", "FastRNN", I=40, H=128),
    Case("seq_fastgrnn_h128_T100", "FastGRNN", I=40, H=128),
    Case("train_lstm_h32_B1_T32", "LSTM", I=16, H=32, B=1, T=32, train=True),
    Case("train_lstm_h64_B4_T32", "LSTM", I=40, H=64, B=4, T=32, train=True),
    Case("train_lstm_h128_B16_T32", "LSTM", I=40, H=128, B=16, T=32, train=True),
    Case("train_lstm_h256_B32_T64", "LSTM", I=64, H=256, B=32, T=64, train=True),
]
IMPLS = ["fastseq", "torch", "onnxruntime"]


# ---------------------------------------------------------------------------- machine

def machine_info():
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass

    def git(*a):
        r = subprocess.run(["git", "-C", ROOT, *a], capture_output=True, text=True)
        return r.stdout.strip() if r.returncode == 0 else None
    rev = git("rev-parse", "--short", "HEAD") or "none"
    if git("status", "--porcelain", "--untracked-files=no"):
        rev += "+dirty"
    versions = {"python": platform.python_version(), "numpy": np.__version__}
    for mod in ("fastseq", "torch", "onnxruntime"):
        try:
            versions[mod] = __import__(mod).__version__
        except Exception:
            versions[mod] = None
    return {"cpu": cpu, "ncpu": os.cpu_count(), "git": rev,
            "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "versions": versions}


def cpu_busy(seconds=0.3):
    """Fraction of all CPUs busy over `seconds` while this process sleeps: other load that
    would distort the timings (None where /proc/stat is missing)."""
    def sample():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + v[4]                       # total, idle + iowait
    try:
        t0, i0 = sample()
        time.sleep(seconds)
        t1, i1 = sample()
    except OSError:
        return None
    return round(1 - (i1 - i0) / max(t1 - t0, 1), 2)


def fastseq_isa():
    try:
        import fastseq
        return fastseq.isa()
    except Exception:
        return None


# ---------------------------------------------------------------------------- peak

def _sgemm_best(n, reps):
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    b = a.T.copy()
    a @ b
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best / 1e9


def sgemm_gflops(threads, n=2048, reps=3):
    """numpy float32 n x n @ n x n, best of reps, with the BLAS pool held to `threads`."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:           # fresh process with the BLAS thread variables set
        env = dict(os.environ, **{k: str(threads) for k in (
            "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")})
        code = (f"import sys; sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r}); "
                f"import run; print(run._sgemm_best({n}, {reps}))")
        r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                           text=True)
        return float(r.stdout) if r.returncode == 0 else None
    with threadpool_limits(limits=threads, user_api="blas"):
        return _sgemm_best(n, reps)


_FMA_C = r"""
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#ifdef __AVX512F__
typedef __m512 V; enum { L = 16 };
#define SET1 _mm512_set1_ps
#define FMA _mm512_fmadd_ps
#define ADD _mm512_add_ps
#define SUM(v) _mm512_reduce_add_ps(v)
#else
typedef __m256 V; enum { L = 8 };
#define SET1 _mm256_set1_ps
#define FMA _mm256_fmadd_ps
#define ADD _mm256_add_ps
static float SUM(__m256 v) { float f[8], s = 0; _mm256_storeu_ps(f, v);
                             for (int i = 0; i < 8; i++) s += f[i]; return s; }
#endif
/* 12 independent accumulators (> FMA latency x FMA ports), named so they stay in registers */
#define X12(S) S(0) S(1) S(2) S(3) S(4) S(5) S(6) S(7) S(8) S(9) S(10) S(11)
#define DECL(k) V a##k = SET1((float)(k + omp_get_thread_num()));
#define STEP(k) a##k = FMA(a##k, m, b);
#define ACC(k) s = ADD(s, a##k);
int main(int argc, char **argv) {
    int nt = atoi(argv[1]); long iters = atol(argv[2]);
    float sink = 0;
    double t0 = omp_get_wtime();
    #pragma omp parallel num_threads(nt) reduction(+:sink)
    {
        V m = SET1(0.999999f), b = SET1(1e-7f), s = SET1(0.0f);
        X12(DECL)
        for (long i = 0; i < iters; i++) { X12(STEP) }
        X12(ACC)
        sink += SUM(s);
    }
    double t = omp_get_wtime() - t0;
    printf("%f %f\n", 2.0 * L * 12 * (double)iters * nt / t / 1e9, sink);
    return 0;
}
"""


def fma_gflops(threads, isa, tmp, iters=100_000_000):
    """GFLOP/s of a register-only FMA loop (gcc, OpenMP); None without gcc or the ISA."""
    flags = {"avx2": ["-mavx2", "-mfma"], "avx512": ["-mavx512f", "-mfma"]}[isa]
    exe = os.path.join(tmp, f"fma_{isa}")
    if not os.path.exists(exe):
        src = os.path.join(tmp, "fma.c")
        with open(src, "w") as f:
            f.write(_FMA_C)
        try:
            r = subprocess.run(["gcc", "-O2", "-fopenmp", *flags, src, "-o", exe],
                               capture_output=True, text=True)
        except OSError:
            return None
        if r.returncode != 0:
            return None
    best = None
    for _ in range(3):
        r = subprocess.run([exe, str(threads), str(iters)], capture_output=True, text=True)
        if r.returncode != 0:
            return None
        g = float(r.stdout.split()[0])
        best = g if best is None else max(best, g)
    return best


def cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            return set(next(l for l in f if l.startswith("flags")).split(":", 1)[1].split())
    except (OSError, StopIteration):
        return set()


def measure_peak(threads, quick):
    flags = cpu_flags()
    with tempfile.TemporaryDirectory() as tmp:
        p = {"fma_avx2": fma_gflops(threads, "avx2", tmp) if {"avx2", "fma"} <= flags else None,
             "fma_avx512": fma_gflops(threads, "avx512", tmp) if "avx512f" in flags else None}
    p["sgemm"] = sgemm_gflops(threads, reps=2 if quick else 5)   # last: BLAS threads spin
    p["peak"] = max((v for v in p.values() if v), default=None)
    time.sleep(0.2)                                                # ... for a while after
    return p


# ---------------------------------------------------------------------------- memory

_RSS = """
import resource, sys, numpy as np
if sys.argv[1] == "fastseq":
    import fastseq
    m = fastseq.LSTM(40, 128, seed=0)
    x = np.random.default_rng(0).standard_normal((100, 1, 40), dtype=np.float32)
    m(x)
    if hasattr(m, "stream"):
        st = m.stream(batch=1)
        for t in range(100):
            st.step(x[t])
try:    # VmHWM: ru_maxrss would carry over the forking parent's peak across exec on Linux
    print(next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM"))
          / 1024)
except (OSError, StopIteration):
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def peak_rss():
    """Peak RSS (MB) of a process that imports fastseq and runs an LSTM I=40 H=128, next to
    that of one that imports numpy only."""
    out = {}
    for what in ("numpy_only", "fastseq"):
        r = subprocess.run([sys.executable, "-c", _RSS, what], capture_output=True, text=True,
                           cwd=os.path.dirname(os.path.abspath(__file__)))  # not the source tree
        out[what + "_mb"] = round(float(r.stdout), 1) if r.returncode == 0 else None
        if r.returncode != 0:
            out["error"] = r.stderr.strip().splitlines()[-1:] or ["failed"]
    return out


# ---------------------------------------------------------------------------- timing

# With several threads, ONNX Runtime's pool keeps spinning for tens of ms after a call
# (measured: fastseq's 2-thread batch case ran 2x slower straight after an ORT call, and
# at its own speed after a 50 ms pause), so each long timed sample waits that long first.
SETTLE_S = 0.05


def measure(runs, budget_s, min_reps, max_reps, sample_s, settle_s=0.0):
    """Median seconds per call of each zero-argument function in `runs`.

    Warm up, then time k calls per sample (k sized so a sample takes about sample_s),
    round-robin over the implementations each repetition with a rotating first one.
    Before a sample, an untimed call (short calls) or settle_s of idle time (long ones)
    lets the previous peer's threads go to sleep."""
    inner, est, rep_s = {}, {}, 0.0
    for name, fn in runs.items():
        fn()
        t0 = time.perf_counter()
        fn()
        est[name] = time.perf_counter() - t0
        inner[name] = max(1, int(sample_s / max(est[name], 1e-9)))
        rep_s += est[name] * inner[name]
    reps = max(min_reps, min(max_reps, int(budget_s / max(rep_s, 1e-9))))
    names, samples = list(runs), {n: [] for n in runs}
    gc_was = gc.isenabled()
    gc.disable()
    try:
        for r in range(reps):
            for name in names[r % len(names):] + names[:r % len(names)]:
                fn, k = runs[name], inner[name]
                if est[name] < 5e-3:
                    fn()              # untimed: lets the previous peer's threads go idle
                elif settle_s:
                    time.sleep(settle_s)
                t0 = time.perf_counter()
                for _ in range(k):
                    fn()
                samples[name].append((time.perf_counter() - t0) / k)
    finally:
        if gc_was:
            gc.enable()
    return {n: statistics.median(s) for n, s in samples.items()}, reps


def max_diff(a, b):
    """Max of |a - b| / max(1, |b|) over the outputs both implementations return ("y",
    "h", "c"; for a train case "loss", "grad.<name>", "param.<name>"): the project's parity
    measure (DESIGN.md section 2), at most TOL where they agree."""
    def scaled(x, y):
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        return float(np.max(np.abs(x - y) / np.maximum(1.0, np.abs(y))))
    return max(scaled(a[k], b[k]) for k in a if k in b)


def run_case(case, threads, args):
    module = make_module(case)
    x = np.random.default_rng(1).standard_normal((case.T, case.B, case.I), dtype=np.float32)
    impls, skipped = {}, {}
    for name in IMPLS:
        if name not in args.impls:
            skipped[name] = "not requested (--impls)"
            continue
        try:
            impls[name] = MAKERS[name](case, module, x, threads)
        except Skip as e:
            skipped[name] = str(e)
        except Exception as e:        # a broken implementation is reported, not fatal
            skipped[name] = f"failed: {type(e).__name__}: {e}"
    outs = {}
    for name in list(impls):
        try:
            outs[name] = impls[name].outputs()
        except Exception as e:
            skipped[name] = f"failed: {type(e).__name__}: {e}"
            del impls[name]
    budget, lo, hi, sample = ((1.5, 3, 30, 0.002) if args.quick else (6.0, 15, 300, 0.005))
    # the pause costs every implementation a few ms of ramp-up after idling (measured
    # here: fastseq alone ran 1.9x faster on 2 threads without it, 1.7x with it), so it
    # is only taken when the pool it waits for is in the run
    settle = SETTLE_S if threads > 1 and "onnxruntime" in impls else 0.0
    secs, reps = measure({n: i.run for n, i in impls.items()}, budget, lo, hi, sample, settle)
    rows = []
    for name in IMPLS:
        row = {"kind": "case", "case": case.name, "impl": name, "threads": threads,
               "cell": case.cell, "shape": {"I": case.I, "H": case.H, "B": case.B,
                                            "T": case.T, "stream": case.stream,
                                            "train": case.train},
               "isa": args.isa if name == "fastseq" else None, "reps": reps,
               "us": None, "gflops": None, "peak_frac": None, "peak_frac_isa": None,
               "ratio_vs_fastseq": None,
               "max_diff": {}, "mismatch": False,
               "notes": impls[name].notes if name in impls else [],
               "skipped": skipped.get(name)}
        if name in impls:
            s = secs[name] / (case.T if case.stream else 1)
            row["us"] = s * 1e6
            row["gflops"] = case.flops() / s / 1e9
            row["max_diff"] = {o: max_diff(outs[name], outs[o]) for o in outs if o != name}
            row["mismatch"] = any(d > TOL for d in row["max_diff"].values())
        rows.append(row)
    fs = rows[0]
    for row in rows[1:]:
        if row["us"] and fs["us"]:
            row["ratio_vs_fastseq"] = row["us"] / fs["us"]
    return rows


# ---------------------------------------------------------------------------- output

def fmt(v, spec):
    """format(v, spec), or a dash as wide as spec asks when v is None."""
    return format(v, spec) if v is not None else format("-", ">" + spec.split(".")[0])


def add_peak_fractions(rows, peak):
    """peak_frac: of the machine's peak (the best of the FMA loops and sgemm);
    peak_frac_isa: of the FMA loop of the ISA fastseq runs (avx2 → fma_avx2)."""
    for r in rows:
        if r["gflops"] is None:
            continue
        p = peak[r["threads"]]
        if p["peak"]:
            r["peak_frac"] = r["gflops"] / p["peak"]
        isa = p.get("fma_" + (r["isa"] or "")) if r["isa"] in ("avx2", "avx512") else None
        if isa:
            r["peak_frac_isa"] = r["gflops"] / isa


def print_table(rows, threads):
    by = {}
    for r in rows:
        by.setdefault(r["case"], {})[r["impl"]] = r
    head = (f"{'case':26} {'fastseq':>9} {'torch':>9} {'ort':>9} {'torch/fs':>8} "
            f"{'ort/fs':>7} {'fs GF/s':>8} {'%peak':>6} {'%isa':>5} {'maxerr':>8}  notes")
    print(f"\n== {threads} thread(s); µs (per step for stream_*, per training step for "
          "train_*), medians ==")
    print(head)
    print("-" * len(head))
    for case, r in by.items():
        fs, to, ox = r["fastseq"], r["torch"], r["onnxruntime"]
        diffs = [d for x in r.values() for d in x["max_diff"].values()]
        notes = list(fs["notes"]) + [x["notes"][0] for n, x in r.items() if n != "fastseq" and x["notes"]]
        notes += [f"{n}: {x['skipped']}" for n, x in r.items() if x["skipped"]]
        if any(x["mismatch"] for x in r.values()):
            notes.insert(0, f"!!! MISMATCH > {TOL:g} !!!")
        print(f"{case:26} {fmt(fs['us'], '9.1f')} {fmt(to['us'], '9.1f')} "
              f"{fmt(ox['us'], '9.1f')} {fmt(to['ratio_vs_fastseq'], '8.2f')} "
              f"{fmt(ox['ratio_vs_fastseq'], '7.2f')} {fmt(fs['gflops'], '8.2f')} "
              f"{fmt(fs['peak_frac'] and 100 * fs['peak_frac'], '6.1f')} "
              f"{fmt(fs['peak_frac_isa'] and 100 * fs['peak_frac_isa'], '5.1f')} "
              f"{fmt(max(diffs) if diffs else None, '8.1e')}  {'; '.join(notes)}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions; 1 thread "
                    "unless --threads is given; under a minute")
    ap.add_argument("--threads", help="comma-separated thread counts (default 1,2)")
    ap.add_argument("--cases", help="comma-separated case names (default: all)")
    ap.add_argument("--impls", default=",".join(IMPLS),
                    help="comma-separated implementations to run (default: all); fastseq "
                         "alone shows its thread scaling without the peers' thread pools")
    ap.add_argument("--json", default=os.path.join(ROOT, "bench", "results.json"),
                    help="JSON-lines output file (default bench/results.json; '' for none)")
    args = ap.parse_args(argv)
    threads = [int(t) for t in (args.threads or ("1" if args.quick else "1,2")).split(",")]
    args.impls = args.impls.split(",")
    if set(args.impls) - set(IMPLS):
        ap.error(f"unknown implementation(s) {sorted(set(args.impls) - set(IMPLS))}; known: {IMPLS}")
    cases = CASES
    if args.cases:
        want = args.cases.split(",")
        unknown = set(want) - {c.name for c in CASES}
        if unknown:
            ap.error(f"unknown case(s) {sorted(unknown)}; known: {[c.name for c in CASES]}")
        cases = [c for c in CASES if c.name in want]

    t_start = time.perf_counter()
    meta = {"kind": "meta", **machine_info(), "quick": args.quick, "threads": threads,
            "busy_before": cpu_busy()}
    args.isa = meta["fastseq_isa"] = fastseq_isa()
    common = {k: meta[k] for k in ("cpu", "git", "date")}
    print(f"fastseq bench  {meta['date']}  git {meta['git']}  cpu {meta['cpu']} "
          f"({meta['ncpu']} cpus)")
    print("versions: " + ", ".join(f"{k} {v or 'MISSING'}" for k, v in meta["versions"].items())
          + f"; fastseq isa {args.isa}")
    if (meta["busy_before"] or 0) > 0.1:
        print(f"WARNING: {meta['busy_before']:.0%} of the CPUs busy with other work: timings "
              "will be noisy")
    for mod in ("fastseq", "torch", "onnxruntime"):
        if meta["versions"][mod] is None:
            print(f"  {mod}: not importable -> skipped, recorded as null")

    # peak before and after the cases, keeping the best of each: a noisy neighbour on a
    # shared machine only ever lowers a measured peak
    peak = {n: measure_peak(n, args.quick) for n in threads}
    rss = peak_rss()
    rows = []
    for n in threads:
        for case in cases:
            print(f"  {case.name} at {n} thread(s) ...", file=sys.stderr, flush=True)
            rows += run_case(case, n, args)
    for n in threads:
        again = measure_peak(n, args.quick)
        peak[n] = {k: max((v for v in (peak[n][k], again[k]) if v), default=None)
                   for k in peak[n]}
    add_peak_fractions(rows, peak)
    meta["busy_after"] = cpu_busy()
    if (meta["busy_after"] or 0) > 0.1:
        print(f"WARNING: {meta['busy_after']:.0%} of the CPUs busy with other work after the run")

    for n in threads:
        print(f"peak fp32 GFLOP/s at {n} thread(s): " + ", ".join(
            f"{k} {fmt(v, '.1f')}" for k, v in peak[n].items()))
    print(f"peak RSS: import fastseq + run LSTM I=40 H=128: {fmt(rss['fastseq_mb'], '.1f')} MB "
          f"(python + numpy alone: {fmt(rss['numpy_only_mb'], '.1f')} MB)"
          + (f"  [{rss['error'][0]}]" if "error" in rss else ""))
    for n in threads:
        print_table([r for r in rows if r["threads"] == n], n)
    lines = [meta, *({"kind": "peak", "threads": n, **peak[n]} for n in threads),
             {"kind": "rss", **rss}, *rows]
    lines = [{**line, **common} for line in lines]
    mism = [f"{r['case']}/{r['impl']}/{r['threads']}" for r in lines if r.get("mismatch")]
    if mism:
        print(f"\n!!! outputs disagree by more than {TOL:g}: {', '.join(mism)}")
    if args.json:
        with open(args.json, "w") as f:
            for line in lines:
                f.write(json.dumps(line) + "\n")
        print(f"\nwrote {len(lines)} JSON lines to {args.json}")
    print(f"total {time.perf_counter() - t_start:.1f} s")
    return 1 if mism else 0


if __name__ == "__main__":
    sys.exit(main())
