"""PyTorch importer. torch is imported by the function, never at `import fastseq`."""
from .. import cells, layers


def _common(module):
    return dict(num_layers=module.num_layers, bias=module.bias, batch_first=module.batch_first,
                bidirectional=module.bidirectional)


def _converters():
    """module type -> function building the fastseq object (without weights)."""
    import torch.nn as nn

    from .. import torch as reference

    def lstm(m):
        return layers.LSTM(m.input_size, m.hidden_size, proj_size=m.proj_size, **_common(m))

    def fastrnn(m):
        return layers.FastRNN(m.input_size, m.hidden_size, nonlinearity=m.nonlinearity,
                              w_rank=m.w_rank, u_rank=m.u_rank, **_common(m))

    def fastgrnn(m):
        return layers.FastGRNN(m.input_size, m.hidden_size, gate_nonlinearity=m.gate_nonlinearity,
                               update_nonlinearity=m.update_nonlinearity, w_rank=m.w_rank,
                               u_rank=m.u_rank, **_common(m))

    return {
        nn.LSTM: lstm,
        nn.GRU: lambda m: layers.GRU(m.input_size, m.hidden_size, **_common(m)),
        nn.RNN: lambda m: layers.RNN(m.input_size, m.hidden_size, nonlinearity=m.nonlinearity, **_common(m)),
        nn.LSTMCell: lambda m: cells.LSTMCell(m.input_size, m.hidden_size, bias=m.bias),
        nn.GRUCell: lambda m: cells.GRUCell(m.input_size, m.hidden_size, bias=m.bias),
        nn.RNNCell: lambda m: cells.RNNCell(m.input_size, m.hidden_size, bias=m.bias,
                                            nonlinearity=m.nonlinearity),
        reference.FastRNN: fastrnn,
        reference.FastGRNN: fastgrnn,
        reference.PeepholeLSTM: lambda m: layers.LSTM(m.input_size, m.hidden_size, peephole=True, **_common(m)),
        reference.CoupledLSTM: lambda m: layers.LSTM(m.input_size, m.hidden_size, coupled=True, **_common(m)),
        reference.ResetBeforeGRU: lambda m: layers.GRU(m.input_size, m.hidden_size, reset_after=False, **_common(m)),
    }


def from_torch(module):
    """Convert a torch module to the equivalent fastseq layer or cell, weights included.

    Accepts nn.LSTM (with proj_size), nn.GRU, nn.RNN, nn.LSTMCell, nn.GRUCell,
    nn.RNNCell and the reference modules of fastseq.torch (FastRNN, FastGRNN,
    PeepholeLSTM, CoupledLSTM, ResetBeforeGRU). Dropout is a training-time
    effect and is dropped."""
    convert = _converters().get(type(module))
    if convert is None:
        raise TypeError("from_torch: expected nn.LSTM, nn.GRU, nn.RNN, their Cell forms or a "
                        f"fastseq.torch module, got {type(module).__name__}")
    target = convert(module)
    target.load_state_dict(module.state_dict())
    return target
