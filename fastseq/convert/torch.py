"""PyTorch importer. torch is imported by the function, never at `import fastseq`."""
from .. import layers


def from_torch(module):
    """Convert a torch nn.LSTM, nn.GRU or nn.RNN into the equivalent fastseq layer.

    Dropout between layers is a training-time effect and is dropped."""
    import torch.nn as nn

    if isinstance(module, nn.LSTM):
        if module.proj_size:
            raise ValueError(f"nn.LSTM with proj_size={module.proj_size}: expected proj_size=0 "
                             "(projection is not supported yet)")
        cls, extra = layers.LSTM, {}
    elif isinstance(module, nn.GRU):
        cls, extra = layers.GRU, {}
    elif isinstance(module, nn.RNN):
        cls, extra = layers.RNN, {"nonlinearity": module.nonlinearity}
    else:
        raise TypeError(f"from_torch: expected nn.LSTM, nn.GRU or nn.RNN, got {type(module).__name__}")
    layer = cls(module.input_size, module.hidden_size, num_layers=module.num_layers, bias=module.bias,
                batch_first=module.batch_first, bidirectional=module.bidirectional, **extra)
    layer.load_state_dict(module.state_dict())
    return layer
