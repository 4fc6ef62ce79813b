"""The README's benchmark table (markdown) from a bench/run.py JSON-lines file.

    python bench/table.py [bench/results.json]
"""
import json
import sys


def us(v):
    return "–" if v is None else f"{v:.1f}" if v < 100 else f"{v:,.0f}"


def ratio(v):
    return "–" if v is None else f"{v:.2f}×"


def torch_peer(row):
    """The torch formulation bench/peers.py picked for a case ("torch: <name>" note)."""
    note = next((n for n in row.get("notes") or [] if n.startswith("torch: ")), None)
    return note[len("torch: "):] if note else "–"


def main(path):
    rows, peaks = {}, {}
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            if r["kind"] == "case":
                rows.setdefault((r["case"], r["threads"]), {})[r["impl"]] = r
            elif r["kind"] == "peak":
                peaks[r["threads"]] = r["peak"]
    print("| case | threads | fastseq µs | torch µs | ORT µs | torch / fastseq | ORT / fastseq "
          "| fastseq GFLOP/s | torch peer |")
    print("|---|---|---|---|---|---|---|---|---|")
    first_seen = {case: i for i, (case, _) in reversed(list(enumerate(rows)))}
    for (case, n), impls in sorted(rows.items(), key=lambda kv: (first_seen[kv[0][0]], kv[0][1])):
        fs, to, ox = (impls.get(k, {}) for k in ("fastseq", "torch", "onnxruntime"))
        gf = fs.get("gflops")
        print(f"| {case} | {n} | {us(fs.get('us'))} | {us(to.get('us'))} | {us(ox.get('us'))} "
              f"| {ratio(to.get('ratio_vs_fastseq'))} | {ratio(ox.get('ratio_vs_fastseq'))} "
              f"| {'–' if gf is None else f'{gf:.1f}'} | {torch_peer(to)} |")
    if peaks:
        print("\npeak fp32 measured in the same run: "
              + ", ".join(f"{p:.0f} GFLOP/s at {n} thread{'s' if n > 1 else ''}"
                          for n, p in sorted(peaks.items())))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "bench/results.json")
