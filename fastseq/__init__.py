"""fastseq: a fast CPU engine for recurrent neural networks (RNN, LSTM, GRU, FastRNN, FastGRNN).

    import fastseq
    layer = fastseq.from_torch(torch_lstm)   # or fastseq.LSTM(input_size, hidden_size, ...)
    output, (h_n, c_n) = layer(x)            # numpy float32, torch's shapes
"""
from ._core import available_isas, get_num_threads, isa, set_isa, set_num_threads
from ._paths import get_include, get_library_dir
from .cells import GRUCell, LSTMCell, RNNCell
from .convert import from_checkpoint, from_edgeml, from_keras, from_onnx, from_torch
from .layers import GRU, LSTM, RNN, FastGRNN, FastRNN
from .io import load, save

__version__ = "0.1.0"

__all__ = ["LSTM", "GRU", "RNN", "FastRNN", "FastGRNN", "LSTMCell", "GRUCell", "RNNCell",
           "from_torch", "from_edgeml", "from_onnx", "from_keras", "from_checkpoint", "isa", "set_isa", "available_isas",
           "set_num_threads", "get_num_threads", "save", "load", "get_include", "get_library_dir",
           "__version__"]
