"""Quantised layers (issue 12, docs/quantization.md): fastseq.quantize gives a layer of the
same class whose every cell variant computes what its torch reference computes with the
dequantised weights (the layer's state_dict; int8 and int4: and the activation rows
quantised as documented), on every ISA, threaded or not; streams,
cells, errors; accuracy against the fp32 layer beside ONNX Runtime's int8 LSTM; the demo
model's bits per character within 2 % (int8) and 0.2 % (bf16) of fp32."""
import numpy as np
import pytest

import fastseq
from _parity import TOL, num_threads

torch = pytest.importorskip("torch")
import fastseq.torch as reference  # noqa: E402
from _q8 import fake_q8, fine_q8  # noqa: E402

torch.set_num_threads(1)

DTYPES = [("int8", None), ("int4", 32), ("int4", 64), ("bf16", None)]
VARIANTS = {
    "rnn_tanh": lambda I, H, **kw: torch.nn.RNN(I, H, nonlinearity="tanh", **kw),
    "rnn_relu": lambda I, H, **kw: torch.nn.RNN(I, H, nonlinearity="relu", **kw),
    "lstm": lambda I, H, **kw: torch.nn.LSTM(I, H, **kw),
    "lstm_proj": lambda I, H, **kw: torch.nn.LSTM(I, H, proj_size=H // 3, **kw),
    "lstm_peephole": lambda I, H, **kw: reference.PeepholeLSTM(I, H, **kw),
    "lstm_coupled": lambda I, H, **kw: reference.CoupledLSTM(I, H, **kw),
    "gru": lambda I, H, **kw: torch.nn.GRU(I, H, **kw),
    "gru_reset_before": lambda I, H, **kw: reference.ResetBeforeGRU(I, H, **kw),
    "fastrnn": lambda I, H, **kw: reference.FastRNN(I, H, **kw),
    "fastrnn_lowrank": lambda I, H, **kw: reference.FastRNN(I, H, w_rank=5, u_rank=6, **kw),
    "fastgrnn": lambda I, H, **kw: reference.FastGRNN(I, H, **kw),
    "fastgrnn_lowrank": lambda I, H, **kw: reference.FastGRNN(I, H, w_rank=4, u_rank=7, **kw),
}


def excess(got, want):
    """Largest |got - want| / (TOL * max(1, |want|)): <= 1 passes (DESIGN.md section 2)."""
    got, want = (v.detach().numpy() if hasattr(v, "detach") else v for v in (got, want))
    return float((np.abs(got - want) / (TOL * np.maximum(1.0, np.abs(want)))).max())


def outputs(result):
    y, state = result
    return [y] + (list(state) if isinstance(state, tuple) else [state])


class Q8Weight(torch.Tensor):
    """A weight of fastseq.torch's reference modules (whose products are `a @ W.T`) that
    quantises the rows of its left operand first, as fastseq's int8 products do."""
    quantise = staticmethod(fake_q8)

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func in (torch.matmul, torch.Tensor.matmul, torch.Tensor.__matmul__) and isinstance(args[1], cls) \
                and not isinstance(args[0], cls):
            return torch.matmul(cls.quantise(args[0].as_subclass(torch.Tensor)), args[1].as_subclass(torch.Tensor))
        return super().__torch_function__(func, types, args, kwargs or {})


class Q8InputWeight(Q8Weight):
    """A weight over the layer's input: fine rows."""
    quantise = staticmethod(fine_q8)


def integer_reference(module, x, h0, c0):
    """One step of `module` (the dequantised weights) with its products' operands quantised
    per row; returns the outputs and the extra error, over TOL, the documented bound allows
    where torch's own kernels keep an operand exact (gru: the blend reads the quantised h0,
    |z (h0 - q(h0))| <= 0.5001 s_h; lstm_proj: o tanh(c) unquantised before W_hr, |mid| < 1
    so |error| <= 0.5001 / 127 sum_k |W_hr[j, k]|)."""
    with torch.no_grad():
        if isinstance(module, (torch.nn.LSTM, torch.nn.GRU, torch.nn.RNN)):
            hx = (fake_q8(h0), c0) if isinstance(module, torch.nn.LSTM) else fake_q8(h0)
            expected = outputs(module(fine_q8(x), hx))
            extra = 0.0
            if isinstance(module, torch.nn.GRU):
                extra = float((0.5001 * h0.abs().amax(-1) / 127.0).max())
            if getattr(module, "proj_size", 0):
                w_hr = [v for k, v in module.state_dict().items() if k.startswith("weight_hr")]
                extra = max(float(0.5001 / 127.0 * w.abs().sum(1).max()) for w in w_hr)
            return expected, extra
        plain = module._params
        kind = {"weight_ih": Q8InputWeight, "weight_ih_a": Q8InputWeight, "weight_ih_b": Q8Weight,
                "weight_hh": Q8Weight, "weight_hh_a": Q8Weight, "weight_hh_b": Q8Weight}
        module._params = lambda suffix: {k: kind[k](v) if k in kind else v for k, v in plain(suffix).items()}
        state = (h0, c0) if isinstance(module, (reference.PeepholeLSTM, reference.CoupledLSTM)) else h0
        return outputs(module(x, state)), 0.0


def quantised_and_reference(variant, seed, dtype="int8", group_size=None, **kw):
    """A quantised layer of `variant` (I 37, H 45, one layer, weights like trained ones:
    torch's init x 2) and its torch module reloaded with the dequantised weights."""
    torch.manual_seed(seed)
    module = VARIANTS[variant](37, 45, num_layers=1, **kw)
    with torch.no_grad():
        for p in module.parameters():
            p.mul_(2.0)
    q = fastseq.quantize(fastseq.from_torch(module), dtype, group_size=group_size)
    module.load_state_dict({k: torch.from_numpy(v) for k, v in q.state_dict().items()})
    return module, q


@pytest.mark.parametrize("dtype, group", [d for d in DTYPES if d[0] != "bf16"])
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_integer_dtypes_compute_their_reference_with_quantised_activations(each_isa, variant, dtype, group):
    """int8 and int4 (docs/quantization.md): the dequantised weights times the activation
    rows quantised as documented, computed by the torch reference; one step (the operands
    of every product are then the inputs and h0 themselves, or what the reference computes
    from them), bidirectional, odd sizes (I 37, H 45: int4's last group short, k not a
    multiple of 8), weights like trained ones, every ISA."""
    module, q = quantised_and_reference(variant, len(variant) + 11, dtype, group, bidirectional=True)
    x = torch.randn(1, 4, 37)
    rows = getattr(module, "proj_size", 0) or 45
    h0, c0 = torch.randn(2, 4, rows), torch.randn(2, 4, 45)
    lstm = isinstance(module, (torch.nn.LSTM, reference.PeepholeLSTM, reference.CoupledLSTM))
    expected, extra = integer_reference(module, x, h0, c0)
    for isa in each_isa():
        got = outputs(q(x.numpy(), (h0.numpy(), c0.numpy()) if lstm else h0.numpy()))
        worst = max(float((np.abs(g - e.numpy()) / (TOL * np.maximum(1.0, np.abs(e.numpy())) + extra)).max())
                    for g, e in zip(got, expected))
        assert worst <= 1.0, f"{isa}: {worst:.2f} x the bound"


@pytest.mark.parametrize("dtype, group", [d for d in DTYPES if d[0] == "bf16"])
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_cell_computes_its_reference_with_the_dequantised_weights(each_isa, variant, dtype, group):
    """bf16 (fp32 activations): 2 layers, bidirectional, packed lengths, odd sizes (I 37),
    weights like trained ones (torch's init x 2), every ISA."""
    torch.manual_seed(len(variant) + len(dtype))
    module = VARIANTS[variant](37, 45, num_layers=2, bidirectional=True)
    with torch.no_grad():
        for p in module.parameters():
            p.mul_(2.0)
    layer = fastseq.from_torch(module)
    q = fastseq.quantize(layer, dtype, group_size=group)
    assert type(q) is type(layer) and q.dtype == dtype and layer.dtype == "f32"
    ref = module  # reloaded with the dequantised weights
    ref.load_state_dict({k: torch.from_numpy(v) for k, v in q.state_dict().items()})
    x = torch.randn(19, 4, 37)
    lengths = torch.tensor([19, 7, 12, 1])
    with torch.no_grad():
        if isinstance(ref, (torch.nn.LSTM, torch.nn.GRU, torch.nn.RNN)):
            from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
            y, state = ref(pack_padded_sequence(x, lengths, enforce_sorted=False))
            expected = [pad_packed_sequence(y, total_length=19)[0]] + (list(state) if isinstance(state, tuple) else [state])
        else:
            expected = outputs(ref(x, lengths=lengths))
    for isa in each_isa():
        got = outputs(q(x.numpy(), lengths=lengths.numpy()))
        worst = max(excess(g, e) for g, e in zip(got, expected))
        assert worst <= 1.0, f"{isa}: {worst:.2f} x the bound"


@pytest.mark.parametrize("dtype, group", DTYPES)
def test_threads_give_the_same_bits_and_streams_the_same_outputs(dtype, group):
    torch.manual_seed(3)
    layer = fastseq.from_torch(torch.nn.LSTM(64, 256))
    q = fastseq.quantize(layer, dtype, group_size=group)
    x = np.random.default_rng(0).standard_normal((12, 8, 64)).astype(np.float32)
    with num_threads(1):
        one = q(x)[0]
    with num_threads(2):
        two = q(x)[0]
    assert np.array_equal(one, two)
    stream = q.stream(batch=8)
    streamed = np.stack([stream.step(x[t]) for t in range(12)])
    assert excess(streamed, one) <= 1.0


def test_cells_quantise_too():
    torch.manual_seed(4)
    cell = torch.nn.GRUCell(7, 9)
    ours = fastseq.quantize(fastseq.from_torch(cell), "int8")
    assert repr(ours) == "fastseq.quantize(GRUCell(7, 9), 'int8')"
    ref = torch.nn.GRUCell(7, 9)
    ref.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    x, h = torch.randn(4, 7), torch.randn(4, 9)
    with torch.no_grad():  # int8: the operands quantised; the blend's h exact (integer_reference)
        want = ref(fine_q8(x), fake_q8(h)).numpy()
    extra = float((0.5001 * h.abs().amax(-1) / 127.0).max())
    got = ours(x.numpy(), h.numpy())
    assert (np.abs(got - want) / (TOL * np.maximum(1.0, np.abs(want)) + extra)).max() <= 1.0


def test_quantised_weights_are_smaller_and_the_float_layer_untouched():
    from fastseq import _core
    layer = fastseq.LSTM(256, 256, seed=0)
    before = layer.state_dict()
    fp32 = len(_core.model_weights(layer.c_model))
    sizes = {d: len(_core.model_weights(fastseq.quantize(layer, d).c_model)) for d in ("int8", "int4", "bf16")}
    assert all(np.array_equal(v, layer.state_dict()[k]) for k, v in before.items())
    # bits per weight 8 (+ a scale per row of 256), 4 + 32 / 32 (a scale per group), 16 of 32;
    # biases and vectors add ~1 %
    assert sizes["int8"] <= 0.27 * fp32 and sizes["int4"] <= 0.17 * fp32 and sizes["bf16"] <= 0.51 * fp32, sizes


def test_repr_and_errors():
    layer = fastseq.GRU(3, 5)
    assert repr(fastseq.quantize(layer, "int4", group_size=64)) == "fastseq.quantize(GRU(3, 5), 'int4', group_size=64)"
    assert repr(fastseq.quantize(layer, "bf16")) == "fastseq.quantize(GRU(3, 5), 'bf16')"
    with pytest.raises(ValueError, match="dtype: expected 'int8', 'int4' or 'bf16', got 'int2'"):
        fastseq.quantize(layer, "int2")
    with pytest.raises(ValueError, match="group_size: expected 32 or 64 for int4, got 16"):
        fastseq.quantize(layer, "int4", group_size=16)
    with pytest.raises(ValueError, match="only int4 has groups"):
        fastseq.quantize(layer, "int8", group_size=32)
    q = fastseq.quantize(layer, "int8")
    with pytest.raises(ValueError, match="expected an fp32 layer, got a int8 one"):
        fastseq.quantize(q, "int4")
    with pytest.raises(TypeError, match="expected a fastseq layer"):
        fastseq.quantize(object(), "int8")
    x = np.ones((4, 1, 3), np.float32)
    with pytest.raises(RuntimeError, match="quantised models run inference only"):
        q.backward(x, np.ones((4, 1, 5), np.float32))
    bad = q.state_dict()
    bad["weight_hh_l0"][0, 0] = np.nan
    with pytest.raises(ValueError, match="quantises only finite weights"):
        q.load_state_dict(bad)


@pytest.mark.parametrize("dtype, group", DTYPES)
def test_files_and_pickles_keep_the_quantised_weights(tmp_path, dtype, group):
    """Format version 3 (docs/fsq-format.md): the stored codes and scales, read back by the
    C reader bit for bit; fp32 files stay version 2; a code out of range is refused."""
    import pickle
    from fastseq import io
    layer = fastseq.GRU(37, 45, num_layers=2, bidirectional=True, reset_after=False, seed=1)
    q = fastseq.quantize(layer, dtype, group_size=group)
    fastseq.save(q, tmp_path / "q.fsq")
    fastseq.save(layer, tmp_path / "f.fsq")
    back = fastseq.load(tmp_path / "q.fsq")
    x = np.random.default_rng(0).standard_normal((5, 2, 37)).astype(np.float32)
    assert repr(back) == repr(q) and np.array_equal(back(x)[0], q(x)[0])
    assert all(np.array_equal(a, b) for a, b in zip(back.state_dict().values(), q.state_dict().values()))
    assert np.array_equal(pickle.loads(pickle.dumps(q))(x)[0], q(x)[0])
    info = io.read(tmp_path / "q.fsq")
    assert info.version == 3 and info.config["dtype"] == dtype and io.read(tmp_path / "f.fsq").version == 2
    ratio = (tmp_path / "q.fsq").stat().st_size / (tmp_path / "f.fsq").stat().st_size
    assert ratio < {"int8": 0.3, "int4": 0.2, "bf16": 0.55}[dtype], ratio
    if dtype == "int8":  # the first code of weight_ih_l0 set to -128: refused by the C reader
        kind, config, tensors = io.layer_parts(q)
        t = tensors["weight_ih_l0"]
        raw = bytearray(t.data)
        raw[4 * t.shape[0]] = 0x80
        tensors["weight_ih_l0"] = io.QuantisedTensor("int8", t.shape, raw)
        with pytest.raises(ValueError, match="code is out of range"):
            io.build(io.decode(io.encode(kind, config, tensors)))


def test_demo_model_bits_per_char_stay_close():
    """int8 within 2 % of fp32, bf16 within 0.2 % (issue 12), on the held-out text."""
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    sys.path.insert(0, str(root / "tools"))
    import train_demo
    from fastseq.train.model import SequenceModel
    model = fastseq.load(str(Path(fastseq.__file__).parent / "data" / "demo.fsq"))
    docs, _, _ = train_demo.gather_docstrings()
    _, held_out = train_demo.split_text(docs)
    held_out = held_out[:20000]
    base = float(train_demo.bits_per_char(model, held_out))
    for dtype, limit in (("int8", 0.02), ("bf16", 0.002)):
        q = SequenceModel(fastseq.quantize(model.rnn, dtype), model.head)
        bpc = float(train_demo.bits_per_char(q, held_out))
        assert abs(bpc - base) <= limit * base, (dtype, bpc, base)


@pytest.mark.parametrize("I, H, B", [(40, 128, 1), (64, 256, 4)])
def test_int8_error_is_not_larger_than_onnx_runtime_int8(I, H, B):
    """Max abs error against the fp32 layer of fastseq int8 vs ONNX Runtime's dynamic int8
    LSTM (quantize_dynamic, QInt8) on the bench's single-node ONNX graph, same weights."""
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
    from peers import onnx_model, ort_int8
    from run import Case

    case = Case("lstm", "LSTM", I=I, H=H, B=B, T=100)
    torch.manual_seed(5)
    module = torch.nn.LSTM(I, H)
    with torch.no_grad():
        for p in module.parameters():
            p.mul_(2.0)
    x = np.random.default_rng(6).standard_normal((100, B, I)).astype(np.float32)
    sess = ort.InferenceSession(ort_int8(onnx_model(case, module, False)).SerializeToString(),
                                providers=["CPUExecutionProvider"])
    y_ort = sess.run(None, {"X": x})[0][:, 0]
    layer = fastseq.from_torch(module)
    y32, _ = layer(x)
    y8, _ = fastseq.quantize(layer, "int8")(x)
    ours, theirs = np.abs(y8 - y32).max(), np.abs(y_ort - y32).max()
    assert ours <= theirs, (ours, theirs)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_int8_batch_one_computes_its_reference(each_isa, variant):
    """One int8 step at batch 1 (the fused int8 steps, where a level has them; the phases
    otherwise), odd sizes (H 45: a padded block), every ISA, one thread: the torch reference
    with the operands quantised, as test_integer_dtypes_compute_their_reference_with_quantised_activations."""
    module, q = quantised_and_reference(variant, len(variant) + 23)
    x = torch.randn(1, 1, 37)
    h0, c0 = torch.randn(1, 1, getattr(module, "proj_size", 0) or 45), torch.randn(1, 1, 45)
    lstm = isinstance(module, (torch.nn.LSTM, reference.PeepholeLSTM, reference.CoupledLSTM))
    expected, extra = integer_reference(module, x, h0, c0)
    for isa in each_isa():
        with num_threads(1):
            got = outputs(q(x.numpy(), (h0.numpy(), c0.numpy()) if lstm else h0.numpy()))
        worst = max(float((np.abs(g - e.numpy()) / (TOL * np.maximum(1.0, np.abs(e.numpy())) + extra)).max())
                    for g, e in zip(got, expected))
        assert worst <= 1.0, f"{isa}: {worst:.2f} x the bound"


CELLS = {"rnn_tanh": lambda I, H: torch.nn.RNNCell(I, H), "rnn_relu": lambda I, H: torch.nn.RNNCell(I, H, nonlinearity="relu"),
         "lstm": lambda I, H: torch.nn.LSTMCell(I, H), "gru": lambda I, H: torch.nn.GRUCell(I, H)}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("H", [32, 45, 128])
def test_int8_batch_one_gives_the_bits_of_a_batch_of_two(each_isa, variant, H):
    """int8 at batch 1, one thread (the fused steps of rnn, lstm and gru; every cell's lone
    input row through gemm_q8_fine1) against the same row in a batch of two (the product and
    cell kernels one after the other, gemm_q8 twice for the fine rows), bit for bit:
    sequences, streams and cells, every ISA; H 32 (one group of four blocks), 45 (a padded
    block, one left over) and 128."""
    torch.manual_seed(H)
    module = VARIANTS[variant](16, H)
    with torch.no_grad():
        for p in module.parameters():
            p.mul_(2.0)
    layer = fastseq.quantize(fastseq.from_torch(module), "int8")
    x = np.random.default_rng(H).standard_normal((50, 1, 16)).astype(np.float32)
    x2 = np.concatenate([x, np.random.default_rng(1).standard_normal(x.shape).astype(np.float32)], axis=1)
    cell = fastseq.quantize(fastseq.from_torch(CELLS[variant](16, H)), "int8") if variant in CELLS else None
    h = np.random.default_rng(2).standard_normal((2, H)).astype(np.float32)
    state = (h, h[::-1].copy()) if variant == "lstm" else h
    for isa in each_isa():
        with num_threads(1):
            one, two = outputs(layer(x)), outputs(layer(x2))
            for a, b in zip(one, two):
                assert np.array_equal(a[:, :1], b[:, :1]), isa
            s1, s2 = layer.stream(batch=1), layer.stream(batch=2)
            for t in range(x.shape[0]):
                assert np.array_equal(s1.step(x[t]), s2.step(x2[t])[:1]), (isa, t)
            if cell is None:
                continue
            c1 = cell(x[0], tuple(s[:1] for s in state) if variant == "lstm" else state[:1])
            c2 = cell(x2[0], state)
            for a, b in zip(c1 if variant == "lstm" else [c1], c2 if variant == "lstm" else [c2]):
                assert np.array_equal(a, b[:1]), isa
