"""fastseq.Seq2Seq: greedy, beam and continuous decoding in C against torch decode loops on
the same weights (fastseq.torch.Seq2Seq: nn.Embedding, nn.LSTM / GRU, nn.Linear)."""
import itertools

import numpy as np
import pytest

import fastseq

torch = pytest.importorskip("torch")
ft = pytest.importorskip("fastseq.torch")
nn = torch.nn

V, BOS, EOS = 7, 0, 1
LENGTHS = [9, 3, 6, 1, 8, 5]   # input lengths, all different


def reference(enc_kind="LSTM", dec_kind="LSTM", layers=2, bidirectional=True, bridge=True, H=24, E=6, I=5,
              vocab=V, seed=0, scale=3.0, embedding=True):
    """A reference model with weights scaled up so that decoded outputs vary from sequence
    to sequence and stop at different steps."""
    torch.manual_seed(seed)
    D = 2 if bidirectional else 1
    enc = getattr(nn, enc_kind)(I, H, num_layers=layers, bidirectional=bidirectional)
    dec_h = H if bridge else D * H
    dec = getattr(nn, dec_kind)(E if embedding else vocab, dec_h, num_layers=layers)
    m = ft.Seq2Seq(enc, dec, nn.Linear(dec_h, vocab), nn.Embedding(vocab, E) if embedding else None,
                   nn.Linear(D * H, H) if bridge else None)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if not name.startswith("embedding"):
                p.mul_(scale)
    return m.eval()


def inputs(I=5, seed=1):
    x = torch.randn(max(LENGTHS), len(LENGTHS), I, generator=torch.Generator().manual_seed(seed))
    return x


def seq_log_prob(ref, x, b, seq):
    """log P of the tokens `seq` for input row b, under torch teacher forcing (double softmax)."""
    dec_in = torch.tensor([BOS] + seq[:-1])[:, None]
    with torch.no_grad():
        logits = ref(x[:LENGTHS[b], b:b + 1], dec_in, [LENGTHS[b]])[:, 0]
    lp = torch.log_softmax(logits.double(), -1)
    return float(lp[torch.arange(len(seq)), torch.tensor(seq)].sum())


def log_prob(ref, x, tokens, ended):
    """log P of each row's tokens, + eos where it ended."""
    return np.array([seq_log_prob(ref, x, b, list(t) + ([EOS] if ended[b] else [])) for b, t in enumerate(tokens)])


# encoder, decoder, layers, bidirectional encoder, bridge; seed: one whose outputs stop at varied steps
CASES = [("LSTM", "LSTM", 2, True, True, 2), ("GRU", "GRU", 1, False, False, 1), ("LSTM", "GRU", 2, True, True, 1),
         ("GRU", "LSTM", 2, False, False, 7), ("RNN", "LSTM", 1, True, False, 0)]


@pytest.mark.parametrize("enc,dec,layers,bidir,bridge,seed", CASES)
def test_greedy_tokens_equal_a_torch_greedy_loop(enc, dec, layers, bidir, bridge, seed):
    ref = reference(enc, dec, layers, bidir, bridge, seed=seed)
    model = fastseq.from_torch(ref)
    assert isinstance(model, fastseq.Seq2Seq)
    x = inputs()
    got = model.greedy(x.numpy(), LENGTHS, max_len=12, bos=BOS, eos=EOS)
    want = ref.greedy(x, LENGTHS, max_len=12, bos=BOS, eos=EOS)
    assert [t.tolist() for t in got] == [t.tolist() for t in want]
    assert all(t.dtype == np.int32 for t in got)
    assert len({len(t) for t in got}) > 1, "output lengths should differ for this test to mean anything"


def test_greedy_scores_are_log_probabilities():
    ref = reference(seed=2)
    model = fastseq.Seq2Seq.from_torch(ref)
    x = inputs()
    tokens, scores = model.greedy(x.numpy(), LENGTHS, max_len=12, bos=BOS, eos=EOS, return_scores=True)
    want = log_prob(ref, x, tokens, [len(t) < 12 for t in tokens])
    np.testing.assert_allclose(scores, want, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("enc,dec,layers,bidir,bridge,seed", CASES[:3])
def test_beam_size_1_equals_greedy(enc, dec, layers, bidir, bridge, seed):
    model = fastseq.from_torch(reference(enc, dec, layers, bidir, bridge, seed=seed))
    x = inputs().numpy()
    tokens, scores = model.greedy(x, LENGTHS, max_len=12, bos=BOS, eos=EOS, return_scores=True)
    beam, beam_scores = model.beam(x, LENGTHS, beam_size=1, max_len=12, bos=BOS, eos=EOS)
    assert [t.tolist() for t in beam] == [t.tolist() for t in tokens]
    np.testing.assert_array_equal(beam_scores, scores)


@pytest.mark.parametrize("beam_size", [2, 3, 5])
def test_beam_beats_greedy_and_scores_its_own_output(beam_size):
    ref = reference(seed=3)
    model = fastseq.from_torch(ref)
    x = inputs(seed=4)
    _, greedy_scores = model.greedy(x.numpy(), LENGTHS, max_len=10, bos=BOS, eos=EOS, return_scores=True)
    seqs, scores = model.beam(x.numpy(), LENGTHS, beam_size=beam_size, max_len=10, bos=BOS, eos=EOS)
    assert np.all(scores >= greedy_scores - 1e-6)
    np.testing.assert_allclose(scores, log_prob(ref, x, seqs, [len(s) < 10 for s in seqs]), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("alpha", [0.0, 1.0, -0.5])
def test_a_wide_beam_finds_the_exhaustive_best(alpha):
    """With a beam wider than every hypothesis, the result is the best of all sequences
    of at most max_len tokens under GNMT's length penalty (enumerated in torch)."""
    vocab, T = 4, 3
    ref = reference("GRU", "GRU", 1, False, False, vocab=vocab, seed=5, scale=2.0)
    model = fastseq.from_torch(ref)
    x = inputs(seed=6)
    seqs, scores = model.beam(x.numpy(), LENGTHS, beam_size=64, max_len=T, bos=BOS, eos=EOS,
                              length_penalty=alpha)
    words = [w for n in range(T + 1) for w in itertools.product([v for v in range(vocab) if v != EOS], repeat=n)]
    for b in range(len(LENGTHS)):
        cands = []
        for w in words:
            ended = len(w) < T
            lp = seq_log_prob(ref, x, b, list(w) + [EOS] * ended)
            n = len(w) + ended
            cands.append((lp / ((5 + n) / 6) ** alpha, lp, w))
        best = max(cands, key=lambda c: c[0])
        assert tuple(seqs[b].tolist()) == best[2]
        assert scores[b] == pytest.approx(best[1], rel=1e-5, abs=1e-4)


def test_continuous_decoding_feeds_outputs_back_like_torch():
    ref = reference("GRU", "GRU", 2, True, True, embedding=False, vocab=4, scale=1.5)
    model = fastseq.from_torch(ref)
    x = inputs()
    start = np.linspace(-1, 1, 4).astype(np.float32)
    out, lengths = model.greedy(x.numpy(), LENGTHS, max_len=15, bos=start, eos=3)
    with torch.no_grad():
        state = ref.initial_states(x, LENGTHS)
        prev, steps = torch.from_numpy(start).expand(len(LENGTHS), -1), []
        for _ in range(15):
            y, state = ref.decoder(prev[None], state)
            prev = ref.head(y[0])
            steps.append(prev)
    want = torch.stack(steps, 1).numpy()
    stop = [int(np.argmax(np.r_[want[b, :, 3] > 0, True])) + 1 for b in range(len(LENGTHS))]
    np.testing.assert_array_equal(lengths, np.minimum(stop, 15))
    for b, n in enumerate(lengths):
        np.testing.assert_allclose(out[b, :n], want[b, :n], rtol=1e-5, atol=1e-5)
        assert not out[b, n:].any()


def test_results_do_not_depend_on_threads():
    model = fastseq.from_torch(reference())
    x = inputs().numpy()
    runs = []
    before = fastseq.get_num_threads()
    try:
        for n in (1, 2):
            fastseq.set_num_threads(n)
            runs.append((model.greedy(x, LENGTHS, max_len=12, bos=BOS, eos=EOS, return_scores=True),
                         model.beam(x, LENGTHS, beam_size=3, max_len=12, bos=BOS, eos=EOS)))
    finally:
        fastseq.set_num_threads(before)
    (g1, b1), (g2, b2) = runs
    assert [t.tolist() for t in g1[0]] == [t.tolist() for t in g2[0]]
    np.testing.assert_array_equal(g1[1], g2[1])
    np.testing.assert_array_equal(b1[1], b2[1])


TABLE_STEPS = dict(max_len=4, bos=BOS, eos=EOS)


def greedy_per_step_and_by_table(model):
    """Greedy tokens and scores of LENGTHS' rows decoded alone (6 rows of a 60-token
    vocabulary over 4 steps: the per-step projection) and among 20 rows (the token table);
    asserts the two give the same bits and returns the per-step ones."""
    rows, x = 20, inputs()
    extra = torch.randn(x.shape[0], rows - len(LENGTHS), x.shape[2], generator=torch.Generator().manual_seed(9))
    x_wide, lengths_wide = torch.cat([x, extra], 1), LENGTHS + [4] * (rows - len(LENGTHS))
    per_step, per_step_scores = model.greedy(x.numpy(), LENGTHS, **TABLE_STEPS, return_scores=True)
    table, table_scores = model.greedy(x_wide.numpy(), lengths_wide, **TABLE_STEPS, return_scores=True)
    assert [t.tolist() for t in table[:len(LENGTHS)]] == [t.tolist() for t in per_step]
    np.testing.assert_array_equal(table_scores[:len(LENGTHS)], per_step_scores)
    return per_step


@pytest.mark.parametrize("dec", ["LSTM", "GRU"])
def test_token_table_gives_the_bits_of_a_projection_per_step(dec):
    """A call projects the embedding through the decoder's first layer once (a token table)
    when V <= rows x max_len, and per step otherwise: the two give the same bits. 6 rows of
    a 60-token vocabulary over 4 steps take the per-step path; the same rows among 20 (or
    beam rows 6 x 3) take the table. Both match the torch greedy loop."""
    ref = reference("LSTM", dec, 2, True, True, vocab=60, seed=8)
    model = fastseq.from_torch(ref)
    per_step = greedy_per_step_and_by_table(model)
    x = inputs()
    assert [t.tolist() for t in per_step] == [t.tolist() for t in ref.greedy(x, LENGTHS, **TABLE_STEPS)]
    assert len({tuple(t.tolist()) for t in per_step}) > 1, "outputs should differ for this test to mean anything"
    few, few_scores = model.beam(x[:, :2].numpy(), LENGTHS[:2], beam_size=3, **TABLE_STEPS)   # 6 rows: per step
    many, many_scores = model.beam(x.numpy(), LENGTHS, beam_size=3, **TABLE_STEPS)            # 18 rows: table
    assert [t.tolist() for t in many[:2]] == [t.tolist() for t in few]
    np.testing.assert_array_equal(many_scores[:2], few_scores)


@pytest.mark.parametrize("dtype", ["int8", "int4", "bf16"])
def test_token_table_of_a_quantised_decoder_gives_its_bits_per_step(dtype):
    """A quantised decoder's token table (int8 / int4: its quantised input rows, projected in
    the call's own scratch) holds the bits its per-step projection computes."""
    f = fastseq.from_torch(reference("LSTM", "LSTM", 2, True, True, vocab=60, seed=8))
    greedy_per_step_and_by_table(fastseq.Seq2Seq(
        fastseq.quantize(f.encoder, dtype), fastseq.quantize(f.decoder, dtype), (f.head_weight, f.head_bias),
        f.embedding, f.bridge))


def _tiny(**kw):
    args = dict(encoder=fastseq.GRU(3, 8), decoder=fastseq.GRU(4, 8),
                head=(np.zeros((5, 8), np.float32), np.zeros(5, np.float32)), embedding=np.zeros((5, 4), np.float32))
    args.update(kw)
    return fastseq.Seq2Seq(**args)


@pytest.mark.parametrize("kw,match", [
    (dict(decoder=fastseq.GRU(4, 8, bidirectional=True)), "unidirectional"),
    (dict(decoder=fastseq.GRU(4, 8, num_layers=2)), "expected num_layers 1"),
    (dict(head=(np.zeros((5, 7)), None)), r"head weight: expected shape \(5, 8\)"),
    (dict(head=(np.zeros((5, 8)), np.zeros(4))), r"head bias: expected shape \(5,\)"),
    (dict(embedding=np.zeros((5, 3))), r"embedding: expected shape \(5, 4\)"),
    (dict(embedding=None), "decoder input_size: expected 5"),
    (dict(decoder=fastseq.GRU(4, 6), head=(np.zeros((5, 6)), None)), "copied: expected .* 6, got 8"),
    (dict(bridge=(np.zeros((8, 9)), None)), r"bridge weight: expected shape \(8, 8\)"),
])
def test_bad_parts_are_named(kw, match):
    with pytest.raises(ValueError, match=match):
        _tiny(**kw)


@pytest.mark.parametrize("kw,match", [
    (dict(bos=5), r"bos: expected a token in \[0, 5\), got 5"),
    (dict(eos=-2), r"eos: expected -1 \(none\) or a token in \[0, 5\), got -2"),
    (dict(max_len=0), "max_len: expected an integer >= 1"),
])
def test_bad_decode_arguments_are_named(kw, match):
    args = dict(max_len=3, bos=1, eos=2)
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        _tiny().greedy(np.zeros((4, 2, 3)), **args)
    with pytest.raises(ValueError, match=match):
        _tiny().beam(np.zeros((4, 2, 3)), **args)


def test_beam_size_below_1_is_refused():
    with pytest.raises(ValueError, match="beam_size: expected an integer >= 1, got 0"):
        _tiny().beam(np.zeros((4, 2, 3)), beam_size=0, max_len=3)


def test_public_api_docstrings():
    validate = pytest.importorskip("numpydoc.validate").validate
    import doctest

    import fastseq.seq2seq as mod
    for name in ["Seq2Seq", "Seq2Seq.greedy", "Seq2Seq.beam", "Seq2Seq.encode", "Seq2Seq.initial_states",
                 "Seq2Seq.from_torch"]:
        errors = [(c, m) for c, m in validate(f"fastseq.seq2seq.{name}")["errors"]
                  if c in {"GL08", "PR01", "PR02", "RT01", "EX01"}]
        assert not errors, (name, errors)
    result = doctest.testmod(mod, report=False)
    assert result.failed == 0 and result.attempted > 0
