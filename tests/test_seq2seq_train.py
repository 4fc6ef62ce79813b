"""Teacher-forcing training of fastseq.Seq2Seq: gradients against torch autograd on the same
weights (decoder -> bridge -> encoder), truncated encoder backward, and a learning test with
different input and output lengths (spelled-out numbers -> digits)."""
import numpy as np
import pytest

import fastseq
from fastseq import _core, train

torch = pytest.importorskip("torch")
ft = pytest.importorskip("fastseq.torch")
nn = torch.nn

V, BOS, EOS = 9, 0, 1


def reference(enc_kind, dec_kind, bidirectional, bridge, layers=2, H=12, seed=0):
    torch.manual_seed(seed)
    D = 2 if bidirectional else 1
    dec_h = H if bridge else D * H
    return ft.Seq2Seq(getattr(nn, enc_kind)(4, H, num_layers=layers, bidirectional=bidirectional),
                      getattr(nn, dec_kind)(5, dec_h, num_layers=layers), nn.Linear(dec_h, V),
                      nn.Embedding(V, 5), nn.Linear(D * H, H) if bridge else None)


def layer_grads(layer, flat):
    out = {}
    for key, (l, d, which) in layer.param_index().items():
        off = _core.param_offset(layer.c_model, l, d, which)
        shape = layer.c_model.param_shape(l, d, which)
        out[key] = flat[off:off + int(np.prod(shape))].reshape(shape)
    return out


def named_grads(model, trainer):
    """The trainer's gradients under the torch reference's parameter names."""
    n_enc = _core.param_count(model.encoder.c_model)
    n_dec = _core.param_count(model.decoder.c_model)
    got = {f"encoder.{k}": v for k, v in layer_grads(model.encoder, trainer.grads[:n_enc]).items()}
    got.update({f"decoder.{k}": v for k, v in layer_grads(model.decoder, trainer.grads[n_enc:n_enc + n_dec]).items()})
    names = {"head_weight": "head.weight", "head_bias": "head.bias", "embedding": "embedding.weight",
             "bridge_weight": "bridge.weight", "bridge_bias": "bridge.bias"}
    got.update({names[k]: v for k, v in trainer._grad_views.items()})
    return got


def torch_loss(ref, x, targets, lengths):
    """Mean cross-entropy per output token under teacher forcing (eos-terminated targets)."""
    T = max(len(t) for t in targets) + 1
    dec_in = torch.full((T, len(targets)), EOS, dtype=torch.long)
    want = torch.full((T, len(targets)), -100, dtype=torch.long)
    for b, t in enumerate(targets):
        dec_in[0, b] = BOS
        dec_in[1:len(t) + 1, b] = torch.tensor(t, dtype=torch.long)
        want[:len(t), b] = torch.tensor(t, dtype=torch.long)
        want[len(t), b] = EOS
    logits = ref(x, dec_in, lengths)
    return nn.functional.cross_entropy(logits.reshape(-1, V), want.reshape(-1), ignore_index=-100)


@pytest.mark.parametrize("enc,dec,bidir,bridge", [("LSTM", "LSTM", True, True), ("GRU", "GRU", False, False),
                                                  ("LSTM", "GRU", True, True), ("GRU", "LSTM", False, False)])
def test_gradients_match_torch_autograd(enc, dec, bidir, bridge):
    ref = reference(enc, dec, bidir, bridge)
    model = fastseq.from_torch(ref)
    trainer = train.Seq2SeqTrainer(model, bos=BOS, eos=EOS)
    x = torch.randn(7, 4, 4, generator=torch.Generator().manual_seed(1))
    lengths = [7, 2, 5, 4]
    targets = [[2, 3, 4], [5], [6, 7, 8, 2, 3], []]
    loss = trainer.loss_and_grad(x.numpy(), targets, lengths)
    ref_loss = torch_loss(ref, x, targets, lengths)
    ref_loss.backward()
    assert loss == pytest.approx(ref_loss.item(), rel=1e-5)

    got = named_grads(model, trainer)
    want = {k: p.grad.numpy() for k, p in ref.named_parameters()}
    assert set(got) == set(want)
    for k, g in want.items():
        scale = max(1.0, float(np.abs(g).max()))
        np.testing.assert_allclose(got[k], g, rtol=1e-4, atol=1e-4 * scale, err_msg=k)
        if k.startswith("encoder."):
            assert np.abs(g).max() > 0, "the encoder must receive gradient through the decoder's states"


def test_tbptt_stops_the_encoder_gradient_at_its_last_steps():
    ref = reference("GRU", "GRU", False, True, layers=1)
    model = fastseq.from_torch(ref)
    trainer = train.Seq2SeqTrainer(model, bos=BOS, eos=EOS)
    x = torch.randn(10, 3, 4, generator=torch.Generator().manual_seed(2))
    targets = [[2, 3], [4], [5, 6, 7]]
    trainer.loss_and_grad(x.numpy(), targets, tbptt=4)
    # torch: the first 6 steps run without gradient, the last 4 from their final state
    with torch.no_grad():
        _, h_mid = ref.encoder(x[:6])
    h_mid.requires_grad_(False)
    enc_out = ref.encoder(x[6:], h_mid)[1]
    s = enc_out.reshape(1, 1, 3, -1).transpose(1, 2).reshape(1, 3, -1)
    h0 = ref.bridge(s)
    dec_in = torch.tensor([[BOS, BOS, BOS], [2, 4, 5], [3, EOS, 6], [EOS, EOS, 7]])
    want = torch.tensor([[2, 4, 5], [3, EOS, 6], [EOS, -100, 7], [-100, -100, EOS]])
    logits = ref.head(ref.decoder(ref.embedding(dec_in), h0)[0])
    nn.functional.cross_entropy(logits.reshape(-1, V), want.reshape(-1), ignore_index=-100).backward()
    n_enc = _core.param_count(model.encoder.c_model)
    got = layer_grads(model.encoder, trainer.grads[:n_enc])
    for k, g in got.items():
        np.testing.assert_allclose(g, getattr(ref.encoder, k).grad.numpy(), rtol=1e-4, atol=1e-5, err_msg=k)


def torch_tbptt_loss(ref, x, targets, lengths, tbptt):
    """torch_loss with each sequence's encoder gradient stopped `tbptt` steps before its end:
    the earlier steps run one sequence at a time under no_grad, the last ones from there."""
    finals = []
    for b, n in enumerate(lengths):
        start, state = max(n - tbptt, 0), None
        if start:
            with torch.no_grad():
                state = ref.encoder(x[:start, b:b + 1])[1]
        finals.append(ref.encoder(x[start:n, b:b + 1], state)[1])
    lstm = isinstance(finals[0], tuple)
    states = [torch.cat([f[i] if lstm else f for f in finals], 1) for i in range(2 if lstm else 1)]
    states = [ref.bridge(s) for s in states]
    ref.initial_states = lambda *_: tuple(states) if lstm else states[0]   # this instance only
    return torch_loss(ref, x, targets, lengths)


@pytest.mark.parametrize("kind,layers,bridge", [("GRU", 1, True), ("LSTM", 2, True)])
def test_tbptt_with_lengths_stops_each_sequence_at_its_own_last_steps(kind, layers, bridge):
    """Lengths 9, 3, 6, 2 with tbptt 4: sequences 0 and 2 keep a gradient-free prefix of 5
    and 2 steps, 1 and 3 are back-propagated whole. Gradients as in torch, every parameter."""
    ref = reference(kind, kind, False, bridge, layers=layers, seed=3)
    model = fastseq.from_torch(ref)
    trainer = train.Seq2SeqTrainer(model, bos=BOS, eos=EOS)
    x = torch.randn(9, 4, 4, generator=torch.Generator().manual_seed(4))
    lengths, targets = [9, 3, 6, 2], [[2, 3], [4], [5, 6, 7], [8, 2]]
    loss = trainer.loss_and_grad(x.numpy(), targets, lengths, tbptt=4)
    ref_loss = torch_tbptt_loss(ref, x, targets, lengths, 4)
    ref_loss.backward()
    assert loss == pytest.approx(ref_loss.item(), rel=1e-5)
    n_enc = _core.param_count(model.encoder.c_model)
    got = layer_grads(model.encoder, trainer.grads[:n_enc])
    for k, g in got.items():
        want = getattr(ref.encoder, k).grad.numpy()
        np.testing.assert_allclose(g, want, rtol=1e-4, atol=1e-4 * max(1.0, float(np.abs(want).max())), err_msg=k)
    untruncated = train.Seq2SeqTrainer(fastseq.from_torch(ref), bos=BOS, eos=EOS)
    untruncated.loss_and_grad(x.numpy(), targets, lengths)
    assert not np.allclose(untruncated.grads[:n_enc], trainer.grads[:n_enc]), "tbptt 4 should cut something"


def test_tbptt_with_lengths_is_the_same_batch_first():
    """Batch-first inputs move each sequence's recorded steps like time-major ones."""
    ref = reference("LSTM", "LSTM", True, True, layers=1, seed=5)
    x = np.random.default_rng(6).normal(size=(8, 3, 4)).astype(np.float32)
    lengths, targets = [8, 2, 5], [[2], [3, 4], []]
    ref_bf = ft.Seq2Seq(nn.LSTM(4, 12, bidirectional=True, batch_first=True), nn.LSTM(5, 12, batch_first=True),
                        nn.Linear(12, V), nn.Embedding(V, 5), nn.Linear(24, 12))
    ref_bf.load_state_dict(ref.state_dict())
    grads = []
    for batch_first, r in ((False, ref), (True, ref_bf)):
        trainer = train.Seq2SeqTrainer(fastseq.from_torch(r), bos=BOS, eos=EOS)
        trainer.loss_and_grad(x.transpose(1, 0, 2) if batch_first else x, targets, lengths, tbptt=3)
        grads.append(trainer.grads)
    # the layouts sum the weight gradients' rows in different orders: rounding apart only
    np.testing.assert_allclose(grads[1], grads[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("tbptt", [0, -2, 1.5, True])
def test_bad_tbptt_is_named(tbptt):
    trainer = train.Seq2SeqTrainer(fastseq.from_torch(reference("GRU", "GRU", False, True, layers=1)),
                                   bos=BOS, eos=EOS)
    with pytest.raises(ValueError, match="tbptt: expected an integer >= 1"):
        trainer.loss_and_grad(np.zeros((6, 2, 4)), [[2], [3]], [6, 3], tbptt=tbptt)


def continuous_reference(kind, bidirectional, layers=2, H=12, seed=0, vocab=3):
    torch.manual_seed(seed)
    D = 2 if bidirectional else 1
    return ft.Seq2Seq(getattr(nn, kind)(4, H, num_layers=layers, bidirectional=bidirectional),
                      getattr(nn, kind)(vocab, H, num_layers=layers), nn.Linear(H, vocab), None,
                      nn.Linear(D * H, H))


@pytest.mark.parametrize("kind,bidir", [("LSTM", True), ("GRU", False)])
def test_continuous_gradients_match_torch_autograd(kind, bidir):
    """No embedding: the decoder reads the start vector, then the previous target vector;
    the loss is the mean squared error over every value of every valid output step."""
    ref = continuous_reference(kind, bidir)
    model = fastseq.from_torch(ref)
    start = np.array([0.5, -1.0, 0.25], np.float32)
    trainer = train.Seq2SeqTrainer(model, bos=start)
    g = torch.Generator().manual_seed(7)
    x = torch.randn(7, 3, 4, generator=g)
    lengths = [7, 2, 5]
    targets = [torch.randn(n, 3, generator=g) for n in (4, 1, 6)]
    loss = trainer.loss_and_grad(x.numpy(), [t.numpy() for t in targets], lengths)

    T = max(len(t) for t in targets)
    dec_in, want, mask = torch.zeros(T, 3, 3), torch.zeros(T, 3, 3), torch.zeros(T, 3, 1)
    for b, t in enumerate(targets):
        dec_in[0, b] = torch.from_numpy(start)
        dec_in[1:len(t), b] = t[:-1]
        want[:len(t), b], mask[:len(t), b] = t, 1.0
    pred = ref(x, dec_in, lengths)
    ref_loss = (((pred - want) ** 2) * mask).sum() / (mask.sum() * 3)
    ref_loss.backward()
    assert loss == pytest.approx(ref_loss.item(), rel=1e-5)
    got = named_grads(model, trainer)
    want_grads = {k: p.grad.numpy() for k, p in ref.named_parameters()}
    assert set(got) == set(want_grads)
    for k, gr in want_grads.items():
        np.testing.assert_allclose(got[k], gr, rtol=1e-4, atol=1e-4 * max(1.0, float(np.abs(gr).max())), err_msg=k)
        assert np.abs(gr).max() > 0, k


def test_learns_a_continuous_output_with_its_own_stop():
    """Each input: 2 to 5 steps of a 2-D point; the output: the points in reverse order and a
    stop channel (+1 at the last step, -1 before). After training, continuous greedy
    decoding (fed back in C, stopping on the channel) returns the right number of points
    for >= 90 % of held-out inputs and the points within 0.2 on average (a constant 0 is off
    by 0.5; this seed reaches 100 % and 0.13)."""
    rng = np.random.default_rng(0)

    def data(n):
        lens = rng.integers(2, 6, size=n)
        pts = rng.uniform(-1, 1, size=(5, n, 2)).astype(np.float32)
        x = np.zeros((5, n, 2), np.float32)
        targets = []
        for b, k in enumerate(lens):
            x[:k, b] = pts[:k, b]
            stop = np.where(np.arange(k) == k - 1, 1.0, -1.0)[:, None]
            targets.append(np.hstack([pts[:k, b][::-1], stop]).astype(np.float32))
        return x, lens, targets

    H = 48
    r = np.random.default_rng(1)
    model = fastseq.Seq2Seq(fastseq.GRU(2, H, bidirectional=True), fastseq.GRU(3, H),
                            (r.uniform(-0.1, 0.1, (3, H)), np.zeros(3)), None,
                            (r.uniform(-0.1, 0.1, (H, 2 * H)), np.zeros(H)))
    start = np.zeros(3, np.float32)
    trainer = train.Seq2SeqTrainer(model, bos=start)
    x, lens, targets = data(1024)
    history = train.fit_seq2seq(trainer, x, targets, lengths=lens, optimizer=("adam", {"lr": 5e-3}), epochs=30,
                                batch_size=32, seed=0, clip_norm=5.0, progress=False)
    assert history["loss"][-1] < 0.1 * history["loss"][0]
    xt, lt, tt = data(200)
    out, got_lens = model.greedy(xt, lt, max_len=8, bos=start, eos=2)
    right = got_lens == np.array([len(t) for t in tt])
    assert right.mean() >= 0.9, right.mean()
    err = np.mean([np.abs(out[b, :len(t), :2] - t[:, :2]).mean() for b, t in enumerate(tt) if right[b]])
    assert err < 0.2, err


def test_continuous_trainer_arguments_are_named():
    model = fastseq.from_torch(continuous_reference("GRU", False, layers=1))
    with pytest.raises(ValueError, match="eos: a continuous model's targets carry their own stop channel"):
        train.Seq2SeqTrainer(model, bos=0.0, eos=1)
    with pytest.raises(ValueError, match=r"bos: expected the start vector \[3\] or a scalar, got shape \(2,\)"):
        train.Seq2SeqTrainer(model, bos=[0.0, 1.0])
    trainer = train.Seq2SeqTrainer(model, bos=0.0)
    with pytest.raises(ValueError, match=r"targets\[1\]: expected \[steps >= 1, 3\] output vectors, got shape \(2, 2\)"):
        trainer.loss_and_grad(np.zeros((6, 2, 4)), [np.zeros((2, 3)), np.zeros((2, 2))])
    with pytest.raises(ValueError, match=r"eos: expected a token in \[0, 9\), got None"):
        train.Seq2SeqTrainer(fastseq.from_torch(reference("GRU", "GRU", False, True)), bos=BOS)


def test_bad_targets_are_named():
    trainer = train.Seq2SeqTrainer(fastseq.from_torch(reference("GRU", "GRU", False, True)), bos=BOS, eos=EOS)
    with pytest.raises(ValueError, match=r"targets\[1\]: expected tokens in \[0, 9\)"):
        trainer.loss_and_grad(np.zeros((6, 2, 4)), [[2], [9]])
    with pytest.raises(ValueError, match="targets: expected 2 sequences"):
        trainer.loss_and_grad(np.zeros((6, 2, 4)), [[2]])


# ---- learning: spelled-out numbers -> digits ---------------------------------------------

ONES = "zero one two three four five six seven eight nine".split()
TEENS = "ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()
TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()
WORDS = ONES + TEENS + TENS + ["hundred"]


def spell(n):
    """English words of 0 <= n < 1000 ("three hundred forty two")."""
    words = []
    if n >= 100:
        words += [ONES[n // 100], "hundred"]
        n %= 100
        if n == 0:
            return words
    if n >= 20:
        words.append(TENS[n // 10 - 2])
        if n % 10:
            words.append(ONES[n % 10])
    else:
        words.append((ONES + TEENS)[n])
    return words


def test_learns_spelled_numbers_to_digits():
    """1 to 4 words in, 1 to 3 digits out; trained on 80 % of 0..999, >= 95 % of the
    held-out numbers decoded exactly (greedy, in C)."""
    rng = np.random.default_rng(0)
    numbers = rng.permutation(1000)
    train_n, test_n = numbers[:800], numbers[800:]

    def encode(ns):
        spelled = [spell(int(n)) for n in ns]
        x = np.zeros((4, len(ns), len(WORDS)), np.float32)
        for b, words in enumerate(spelled):
            x[np.arange(len(words)), b, [WORDS.index(w) for w in words]] = 1.0
        digits = [[int(d) + 2 for d in str(int(n))] for n in ns]   # tokens 2..11; 0 bos, 1 eos
        return x, [len(s) for s in spelled], digits

    H, E, vocab = 64, 16, 12
    r = np.random.default_rng(1)
    model = fastseq.Seq2Seq(fastseq.GRU(len(WORDS), H, bidirectional=True), fastseq.GRU(E, H),
                            (r.uniform(-0.1, 0.1, (vocab, H)), np.zeros(vocab)),
                            r.normal(0, 1, (vocab, E)), (r.uniform(-0.1, 0.1, (H, 2 * H)), np.zeros(H)))
    trainer = train.Seq2SeqTrainer(model, bos=0, eos=1)
    x, lengths, digits = encode(train_n)
    train.fit_seq2seq(trainer, x, digits, lengths=lengths, optimizer=("adam", {"lr": 1e-2}), epochs=12,
                      batch_size=32, seed=0, clip_norm=5.0, progress=False)
    xt, lt, dt = encode(test_n)
    got = model.greedy(xt, lt, max_len=5, bos=0, eos=1)
    exact = np.mean([g.tolist() == d for g, d in zip(got, dt)])
    assert exact >= 0.95, exact


def test_public_api_docstrings():
    validate = pytest.importorskip("numpydoc.validate").validate
    import doctest

    import fastseq.train.seq2seq as mod
    for name in ["Seq2SeqTrainer", "Seq2SeqTrainer.loss_and_grad", "fit_seq2seq"]:
        errors = [(c, m) for c, m in validate(f"fastseq.train.seq2seq.{name}")["errors"]
                  if c in {"GL08", "PR01", "PR02", "RT01", "EX01"}]
        assert not errors, (name, errors)
    result = doctest.testmod(mod, report=False)
    assert result.failed == 0 and result.attempted > 0


def test_fit_trains_batch_first_layers_with_truncated_encoder_backward():
    """fit_seq2seq over batch-first layers with tbptt: the loss falls, the encoder's
    weights change, and the model decodes with what it learned (the first target token)."""
    rng = np.random.default_rng(3)
    N, T = 64, 12
    first = rng.integers(2, V, size=N)
    x = np.zeros((N, T, 4), np.float32)
    x[np.arange(N), -1, first % 4] = 1.0            # the class sits in the last input step
    x[np.arange(N), -2, (first // 4) % 4] = 1.0
    targets = [[int(f)] for f in first]
    model = fastseq.Seq2Seq(fastseq.LSTM(4, 16, batch_first=True), fastseq.LSTM(5, 16, batch_first=True),
                            (rng.normal(0, 0.1, (V, 16)), np.zeros(V)), rng.normal(0, 1, (V, 5)))
    trainer = train.Seq2SeqTrainer(model, bos=BOS, eos=EOS)
    enc_before = model.encoder.state_dict()["weight_ih_l0"].copy()
    history = train.fit_seq2seq(trainer, x, targets, optimizer=("adam", {"lr": 2e-2}), epochs=40, batch_size=16,
                                tbptt=3, progress=False)
    assert history["loss"][-1] < 0.2 * history["loss"][0]
    assert not np.allclose(model.encoder.state_dict()["weight_ih_l0"], enc_before)
    got = model.greedy(x, max_len=3, bos=BOS, eos=EOS)
    assert np.mean([g[:1].tolist() == t for g, t in zip(got, targets)]) >= 0.9
