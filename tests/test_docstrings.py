"""numpydoc docstrings on the public Python API: every parameter documented (and none
that does not exist), a Returns section where something is returned, an Examples section
(numpydoc's own validator)."""
import pytest

validate = pytest.importorskip("numpydoc.validate").validate

CHECKS = {"GL08", "PR01", "PR02", "RT01", "EX01"}   # no docstring, params, returns, examples
LAYERS = ["LSTM", "GRU", "RNN", "FastRNN", "FastGRNN"]
LAYER_METHODS = ["__call__", "backward", "to_torch", "stream", "state_dict", "load_state_dict",
                 "config", "param_index"]
CELLS = ["LSTMCell", "GRUCell", "RNNCell"]
CELL_METHODS = ["__call__", "backward", "to_torch", "as_layer", "state_dict", "load_state_dict"]
TRAIN = ["fit", "tbptt", "History", "History.plot", "make_loss", "SequenceModel",
         "SequenceModel.forward", "SequenceModel.backward", "SequenceModel.predict",
         "PerStepLinear", "LastStepLinear", "MSELoss", "MSELoss.__call__", "CrossEntropyLoss",
         "CrossEntropyLoss.__call__", "mask_from_lengths", "SGD", "Adam", "clip_grad_norm",
         "clip_grad_value", "teacher_forcing_inputs", "generate"]
NAMES = ([f"fastseq.{c}" for c in LAYERS]
         + [f"fastseq.layers.{c}.{m}" for c in LAYERS[:1] for m in LAYER_METHODS]
         + [f"fastseq.{c}" for c in CELLS]
         + [f"fastseq.cells.LSTMCell.{m}" for m in CELL_METHODS] + ["fastseq.cells.RNNCell.__call__"]
         + [f"fastseq.train.{n}" for n in TRAIN] + ["fastseq.dask.score", "fastseq.quantize"])


@pytest.mark.parametrize("name", NAMES)
def test_numpydoc_sections(name):
    errors = [(code, msg) for code, msg in validate(name)["errors"] if code in CHECKS]
    assert not errors, errors


@pytest.mark.parametrize("module", ["fastseq.layers", "fastseq.cells", "fastseq.train.fit",
                                    "fastseq.train.tbptt", "fastseq.train.history",
                                    "fastseq.train.losses", "fastseq.train.model",
                                    "fastseq.train.heads", "fastseq.train.optim",
                                    "fastseq.train.teacher", "fastseq.quantization"])
def test_examples_run(module):
    import doctest
    import importlib

    import numpy as np

    import fastseq
    from fastseq import train
    names = {"fastseq": fastseq, "np": np, **{k: getattr(train, k) for k in train.__all__}}
    result = doctest.testmod(importlib.import_module(module), extraglobs=names,
                             optionflags=doctest.ELLIPSIS, report=False)
    assert result.failed == 0 and result.attempted > 0, result
