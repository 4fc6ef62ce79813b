"""The benchmark's own torch peers compute what the reference modules compute: a fast
peer that is wrong would make every ratio against it meaningless."""
import sys
from pathlib import Path

import pytest

from _parity import excess
from _requires import require

torch = require("torch", "torch==2.13.0")
import fastseq.torch as reference  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from torch_fast import scripted_edgeml  # noqa: E402


@pytest.mark.parametrize("cell", ["FastRNN", "FastGRNN"])
def test_scripted_edgeml_cells_match_the_reference(cell):
    torch.manual_seed(4)
    module = getattr(reference, cell)(40, 128).eval()
    with torch.no_grad():                       # non-default scalars and biases
        for p in module.parameters():
            p.add_(0.3 * torch.randn_like(p))
    fast = scripted_edgeml(cell, module)
    x = torch.randn(30, 3, 40)
    h0 = torch.zeros(3, 128)
    with torch.inference_mode():
        y_ref, h_ref = module(x)
        y, h = fast(x, h0)
        steps, hs = [], h0
        for t in range(30):
            hs = fast.step(x[t], hs)
            steps.append(hs)
    assert excess(y.numpy(), y_ref) <= 1.0
    assert excess(h.numpy(), h_ref[0]) <= 1.0
    assert excess(torch.stack(steps).numpy(), y_ref) <= 1.0


def test_scripted_edgeml_declines_what_it_does_not_implement():
    assert scripted_edgeml("FastRNN", reference.FastRNN(4, 8, w_rank=2)) is None
    assert scripted_edgeml("FastGRNN", reference.FastGRNN(4, 8, update_nonlinearity="relu")) is None
