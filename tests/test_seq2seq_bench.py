"""The seq2seq benchmark's torch peers compute what the reference module's greedy loop
computes: a fast peer that decoded something else would make the ratio against it
meaningless."""
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("torch")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import seq2seq_greedy  # noqa: E402


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_every_torch_peer_decodes_the_tokens_of_the_reference_loop(cell):
    args = SimpleNamespace(batch=9, hidden=24, vocab=11, len=8, cell=cell)
    ref, model, x, lengths = seq2seq_greedy.build(args)
    import torch

    with torch.no_grad():   # larger weights: outputs that differ between sequences and steps
        for p in ref.parameters():
            p.mul_(4.0)
    model = type(model).from_torch(ref)
    xt = torch.from_numpy(x)
    want = torch.stack(ref.greedy(xt, lengths, max_len=args.len, bos=2)).numpy()
    assert len({tuple(row) for row in want}) > 1, "outputs should differ for this test to mean anything"
    np.testing.assert_array_equal(np.stack(model.greedy(x, lengths, max_len=args.len, bos=2)), want)
    peers = seq2seq_greedy.torch_peers(ref)
    assert set(peers) == {"module", "cell", "table", "table_scripted"}
    for name, fn in peers.items():
        np.testing.assert_array_equal(fn(xt, lengths, args.len, 2).numpy(), want, err_msg=name)
