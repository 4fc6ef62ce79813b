"""The low-precision table (issue 12): fastseq int8 / int4 / bf16 beside ONNX Runtime fp32
and ONNX Runtime dynamic int8 (quantize_dynamic, QInt8) on the same single-node ONNX graph,
same weights (torch's default init x 2, so they look trained), same process, same threads.

    python bench/quant.py [--quick] [--threads 1] [--cases a,b] [--json out.json]

Per case and implementation: median µs (per step for a stream case), the ratio of "ORT best"
(the faster of ORT fp32 and ORT int8) to it, and the max abs error of its outputs (y, h, c)
against fastseq fp32 (which matches torch to 1e-5). Prints a Markdown table.
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peers import Impl, Skip, make_module, make_ort  # noqa: E402
from run import CASES, machine_info, measure  # noqa: E402

QUANT_CASES = ["stream_lstm_h128", "tiny_lstm_h32_T50", "seq_lstm_h256_T100", "seq_gru_h256_T100",
               "seq_lstm_h1024_T100", "batch_lstm_h256_B64_T100"]
IMPLS = ["fastseq f32", "fastseq int8", "fastseq int4", "fastseq bf16", "ORT f32", "ORT int8"]


def make_fastseq_q(case, module, x, threads, dtype):
    import fastseq
    fastseq.set_num_threads(threads)
    layer = fastseq.from_torch(module)
    if dtype != "f32":
        layer = fastseq.quantize(layer, dtype)
    if not case.stream:
        def outputs():
            y, state = layer(x)
            h, c = state if isinstance(state, tuple) else (state, None)
            return {"y": y, "h": h[0], **({"c": c[0]} if c is not None else {})}
        return Impl(lambda: layer(x), outputs)
    st = layer.stream(batch=case.B)
    steps = [np.ascontiguousarray(x[t]) for t in range(case.T)]

    def run(collect=False):
        st.reset()
        return [np.array(st.step(s)) for s in steps] if collect else [st.step(s) for s in steps]

    def outputs():
        ys = np.stack(run(True))
        h, c = st.state if isinstance(st.state, tuple) else (st.state, None)
        return {"y": ys, "h": np.asarray(h)[0], **({"c": np.asarray(c)[0]} if c is not None else {})}
    return Impl(run, outputs)


def max_abs(a, b):
    return max(float(np.max(np.abs(np.asarray(a[k], np.float64) - np.asarray(b[k], np.float64))))
               for k in a if k in b)


def run_case(case, threads, quick):
    import torch
    module = make_module(case)
    with torch.no_grad():
        for p in module.parameters():
            p.mul_(2.0)
    x = np.random.default_rng(1).standard_normal((case.T, case.B, case.I), dtype=np.float32)
    impls, skipped = {}, {}
    for name in IMPLS:
        try:
            if name.startswith("fastseq"):
                impls[name] = make_fastseq_q(case, module, x, threads, name.split()[1])
            else:
                impls[name] = make_ort(case, module, x, threads, int8=name.endswith("int8"))
        except Skip as e:
            skipped[name] = str(e)
    outs = {n: i.outputs() for n, i in impls.items()}
    budget, lo, hi, sample = (1.0, 3, 20, 0.002) if quick else (4.0, 10, 200, 0.005)
    secs, _ = measure({n: i.run for n, i in impls.items()}, budget, lo, hi, sample)
    per = case.T if case.stream else 1
    ort = [secs[n] for n in ("ORT f32", "ORT int8") if n in secs]
    best = min(ort) if ort else None
    rows = []
    for name in IMPLS:
        row = {"kind": "quant", "case": case.name, "impl": name, "threads": threads, "skipped": skipped.get(name)}
        if name in impls:
            row["us"] = secs[name] / per * 1e6
            row["ort_best_ratio"] = best / secs[name] if best else None
            row["max_abs_err_vs_f32"] = max_abs(outs[name], outs["fastseq f32"])
        rows.append(row)
    return rows


def table(rows):
    lines = ["| case | impl | µs | ORT best / this | max abs err vs fp32 |", "|---|---|---|---|---|"]
    for r in rows:
        if r.get("us") is None:
            continue
        ratio = f"{r['ort_best_ratio']:.2f}×" if r.get("ort_best_ratio") else "—"
        lines.append(f"| {r['case']} | {r['impl']} | {r['us']:.1f} | {ratio} | {r['max_abs_err_vs_f32']:.1e} |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cases", default=",".join(QUANT_CASES))
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    by_name = {c.name: c for c in CASES}
    rows = []
    for name in args.cases.split(","):
        rows += run_case(by_name[name], args.threads, args.quick)
        print(table([r for r in rows if r["case"] == name]).split("\n", 2)[-1], flush=True)
    print(table(rows))
    if args.json:
        with open(args.json, "w") as f:
            f.write(json.dumps({"kind": "meta", **machine_info()}) + "\n")
            for r in rows:
                f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
