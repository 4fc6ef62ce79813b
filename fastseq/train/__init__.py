"""Training on the device: back-propagation through time in C, truncated BPTT, heads,
losses, optimizers and a `fit` loop.

    from fastseq import train
    model = train.SequenceModel(fastseq.LSTM(2, 64), train.LastStepLinear(64, 1, seed=0))
    x = np.random.randn(20, 512, 2).astype(np.float32)    # [T, N, I]: the layer's layout
    y = x.sum(axis=(0, 2))[:, None]                      # one target per sequence
    history = train.fit(model, x, y, loss="mse", optimizer=("adam", {"lr": 1e-2}),
                        epochs=10, batch_size=64, seed=0)
    layer.to_torch()          # the trained layer as an nn.Module

Low level: `layer.backward(x, grad_output, hx=None, grad_hn=None, lengths=None)` returns
gradients keyed like `layer.state_dict()`, plus "input" and "hx".
"""
from .export import to_torch
from .fit import fit
from .history import History
from .heads import LastStepLinear, PerStepLinear
from .losses import CrossEntropyLoss, MSELoss, make_loss, mask_from_lengths
from .model import SequenceModel
from .optim import SGD, Adam, clip_grad_norm, clip_grad_value
from .tbptt import tbptt
from .seq2seq import Seq2SeqTrainer, fit_seq2seq
from .teacher import generate, teacher_forcing_inputs
from ._tape import Recorder, layer_backward
from .tree import TreeModel, join_trees

__all__ = ["SequenceModel", "PerStepLinear", "LastStepLinear", "MSELoss", "CrossEntropyLoss",
           "mask_from_lengths", "SGD", "Adam", "clip_grad_norm", "clip_grad_value", "tbptt",
           "fit", "History", "make_loss", "teacher_forcing_inputs", "generate", "to_torch", "Recorder",
           "layer_backward", "TreeModel", "join_trees", "Seq2SeqTrainer", "fit_seq2seq"]
