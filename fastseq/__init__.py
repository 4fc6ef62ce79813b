"""fastseq: a fast CPU engine for recurrent neural networks (RNN, LSTM, GRU, FastRNN, FastGRNN).

    import fastseq
    layer = fastseq.from_torch(torch_lstm)   # or fastseq.LSTM(input_size, hidden_size, ...)
    output, (h_n, c_n) = layer(x)            # numpy float32 (torch in: torch out), torch's shapes

Submodules load on first use, so `import fastseq` imports numpy only: `fastseq.train`,
`fastseq.torch` (reference modules, imports torch), `fastseq.dask` (imports dask).
"""
import importlib as _importlib
import os as _os

try:
    from ._core import available_isas, get_num_threads, isa, set_isa, set_num_threads
except ModuleNotFoundError as _exc:  # the source tree, not the installed package
    if _exc.name != __name__ + "._core":
        raise
    raise ImportError(
        f"fastseq's compiled core (fastseq._core) is missing: this imported the source "
        f"folder {_os.path.dirname(__file__)}, which is not built. Run `pip install .` and "
        f"import fastseq from outside the source tree (cd elsewhere first)") from None
from ._paths import get_include, get_library_dir
from .cells import GRUCell, LSTMCell, RNNCell
from .convert import from_checkpoint, from_edgeml, from_keras, from_onnx, from_torch
from .layers import GRU, LSTM, RNN, UGRNN, FastGRNN, FastRNN
from .io import load, save
from .seq2seq import Seq2Seq
from .tree import RecursiveNN, TreeLSTM
from .quantization import quantize

__version__ = "0.1.0"

__all__ = ["LSTM", "GRU", "RNN", "FastRNN", "FastGRNN", "LSTMCell", "GRUCell", "RNNCell",
           "from_torch", "from_edgeml", "from_onnx", "from_keras", "from_checkpoint", "isa", "set_isa", "available_isas",
           "set_num_threads", "get_num_threads", "save", "load", "get_include", "get_library_dir",
           "quantize", "__version__", "TreeLSTM", "RecursiveNN", "Seq2Seq", "UGRNN"]

_LAZY_SUBMODULES = {"train", "torch", "dask", "export_c", "cli"}


def __getattr__(name):
    """`fastseq.torch`, `fastseq.train`, `fastseq.dask`: imported on first access."""
    if name in _LAZY_SUBMODULES:
        return _importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
