"""The README's benchmark chart: how many times slower each peer is than fastseq, per case,
from a bench/run.py JSON-lines file, as a PNG (needs matplotlib).

    python bench/chart.py [bench/results.json] [-o docs/bench.png] [--threads 1]
"""
import argparse
import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEERS = (("torch", "PyTorch"), ("onnxruntime", "ONNX Runtime"))


def ratios(path, threads):
    """{case: {peer: peer µs / fastseq µs}} for one thread count, in the file's case order."""
    out = {}
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            if r.get("kind") == "case" and r["threads"] == threads and r["impl"] != "fastseq":
                if r.get("ratio_vs_fastseq") is not None:
                    out.setdefault(r["case"], {})[r["impl"]] = r["ratio_vs_fastseq"]
    return out


def draw(data, threads, out_path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = list(data)
    fig, ax = plt.subplots(figsize=(8, 0.32 * len(cases) + 1.4))
    height = 0.8 / len(PEERS)
    for i, (impl, label) in enumerate(PEERS):
        ys = [c + (i - (len(PEERS) - 1) / 2) * height for c in range(len(cases))]
        ax.barh(ys, [data[c].get(impl, 0) for c in cases], height, label=label)
    ax.axvline(1.0, color="black", lw=0.8)
    ax.set_xscale("log")
    ax.set_yticks(range(len(cases)), cases, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(f"peer time / fastseq time ({threads} thread{'s' if threads > 1 else ''}; > 1: fastseq faster)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(out_path, dpi=110)
    return out_path


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="?", default=os.path.join(ROOT, "bench", "results.json"))
    ap.add_argument("-o", "--output", default=os.path.join(ROOT, "docs", "bench.png"))
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    data = ratios(args.results, args.threads)
    if not data:
        raise SystemExit(f"{args.results}: no peer ratios at {args.threads} thread(s)")
    print(draw(data, args.threads, args.output))


if __name__ == "__main__":
    main()
