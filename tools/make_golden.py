"""Write the golden .fsq files of tests/data/golden/: one per cell kind and variant, one
with an output head and metadata, each made from a seeded layer, so that later versions of
fastseq prove they still read files written by format version 1.

    python tools/make_golden.py                 # writes tests/data/golden/*.fsq + manifest.json

manifest.json lists each file with the class, constructor arguments and seed that made
it (and, for the head, the head's arguments and seed): tests/test_model_file.py rebuilds
every model from there and compares it with the loaded file. Run it only to add files;
the files already there were written by fastseq 0.1.0 (format version 1) and must stay
as they are.
"""
import json
import os
import sys

import fastseq
from fastseq.train import PerStepLinear, SequenceModel

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "data", "golden")

LAYERS = [  # (file stem, class name, constructor arguments, seed)
    ("rnn_tanh", "RNN", {"input_size": 3, "hidden_size": 5, "num_layers": 2}, 1),
    ("rnn_relu_bidir", "RNN", {"input_size": 4, "hidden_size": 9, "nonlinearity": "relu",
                               "bidirectional": True, "batch_first": True}, 2),
    ("lstm", "LSTM", {"input_size": 6, "hidden_size": 11, "num_layers": 2, "bidirectional": True}, 3),
    ("lstm_proj_peephole", "LSTM", {"input_size": 5, "hidden_size": 10, "proj_size": 4,
                                    "peephole": True}, 4),
    ("lstm_coupled_nobias", "LSTM", {"input_size": 3, "hidden_size": 7, "coupled": True,
                                     "bias": False}, 5),
    ("gru", "GRU", {"input_size": 4, "hidden_size": 13, "num_layers": 2}, 6),
    ("gru_reset_before", "GRU", {"input_size": 5, "hidden_size": 6, "reset_after": False,
                                 "bidirectional": True}, 7),
    ("fastrnn_lowrank", "FastRNN", {"input_size": 7, "hidden_size": 9, "w_rank": 3, "u_rank": 2,
                                    "nonlinearity": "relu", "alpha_init": -2.5}, 8),
    ("fastgrnn", "FastGRNN", {"input_size": 4, "hidden_size": 10, "num_layers": 2,
                              "update_nonlinearity": "sigmoid", "nu_init": -3.5}, 9),
    ("fastgrnn_lowrank", "FastGRNN", {"input_size": 8, "hidden_size": 12, "w_rank": 4,
                                      "u_rank": 5}, 10),
]
HEAD = ("lstm_head_meta", "LSTM", {"input_size": 5, "hidden_size": 8}, 11,
        {"in_features": 8, "out_features": 3, "seed": 12}, {"vocab": "abc", "epochs": 2, "lr": 0.5})


def main():
    os.makedirs(OUT, exist_ok=True)
    manifest = {"fastseq": "0.1.0", "format_version": fastseq.io.FORMAT_VERSION, "files": []}
    for stem, cls, args, seed in LAYERS:
        layer = getattr(fastseq, cls)(**args, seed=seed)
        fastseq.save(layer, os.path.join(OUT, stem + ".fsq"))
        manifest["files"].append({"file": stem + ".fsq", "class": cls, "args": args, "seed": seed})
    stem, cls, args, seed, head, meta = HEAD
    model = SequenceModel(getattr(fastseq, cls)(**args, seed=seed), PerStepLinear(**head))
    fastseq.save(model, os.path.join(OUT, stem + ".fsq"), metadata=meta)
    manifest["files"].append({"file": stem + ".fsq", "class": cls, "args": args, "seed": seed,
                              "head": {"class": "PerStepLinear", **head}, "metadata": meta})
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    for entry in manifest["files"]:
        print(f"wrote tests/data/golden/{entry['file']}: {entry['class']}({entry['args']}, seed={entry['seed']})"
              + (" + PerStepLinear head + metadata" if "head" in entry else ""), file=sys.stderr)


if __name__ == "__main__":
    main()
