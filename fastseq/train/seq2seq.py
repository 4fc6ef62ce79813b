"""Training a fastseq.Seq2Seq by teacher forcing: the decoder reads the previous target
(token, or output vector for a continuous model), a cross-entropy (tokens) or mean squared
error (continuous) per output step, and the gradient flows from the decoder's initial
state back through the bridge into the encoder (BPTT in C for both layers)."""
import time
from typing import Any, Callable, List, Optional, Sequence

import numpy as np

from .. import _core
from .._arrays import as_float32, as_lengths
from ._tape import Recorder
from .history import History
from .optim import clip_grad_norm, make_optimizer
from .progress import EpochProgress


class Seq2SeqTrainer:
    """Every parameter of a :class:`fastseq.Seq2Seq` in one flat ``params`` vector
    (encoder, decoder, head weight and bias, embedding, bridge weight and bias), with the
    matching ``grads``; the model's arrays become views into ``params``, so an optimizer's
    update (``fastseq.train.Adam(trainer)``) is seen by the next ``model.greedy``.

    A token model (with an embedding) learns by cross-entropy: targets are token sequences,
    each ended by `eos`. A continuous model (no embedding) learns by mean squared error:
    targets are ``[T_b, V]`` arrays, the decoder reads `bos` (the start vector) and then the
    previous target vector, as :meth:`fastseq.Seq2Seq.greedy` feeds back its outputs. To
    train its stop channel, put a positive target there at a sequence's last step and a
    negative one before (decoding stops after the first step above 0).

    Parameters
    ----------
    model : fastseq.Seq2Seq
        A token or a continuous model.
    bos : int or array_like
        Tokens: the start token. Continuous: the first decoder input, ``[V]`` or a scalar
        (broadcast).
    eos : int, optional
        Tokens: the end token the targets end with (required). Continuous: None.

    Raises
    ------
    ValueError
        `bos` / `eos` outside the vocabulary or missing; a continuous model given an `eos`
        or a `bos` that is not ``[V]``.

    Examples
    --------
    >>> import numpy as np, fastseq
    >>> from fastseq import train
    >>> m = fastseq.Seq2Seq(fastseq.GRU(3, 8), fastseq.GRU(4, 8), (np.zeros((5, 8)), None),
    ...                     np.zeros((5, 4)))
    >>> trainer = train.Seq2SeqTrainer(m, bos=0, eos=1)
    >>> round(trainer.loss_and_grad(np.zeros((6, 2, 3)), [[2, 3], [4]]), 4)
    1.6094
    """

    def __init__(self, model: Any, *, bos: Any, eos: Optional[int] = None):
        self.continuous = model.embedding is None
        if self.continuous:
            if eos is not None:
                raise ValueError(f"eos: a continuous model's targets carry their own stop channel; expected None, "
                                 f"got {eos!r}")
            start = np.asarray(as_float32(bos, "bos"))
            if start.ndim > 1 or start.size not in (1, model.vocab):
                raise ValueError(f"bos: expected the start vector [{model.vocab}] or a scalar, got shape {start.shape}")
            self.model, self.bos, self.eos = model, np.broadcast_to(start, (model.vocab,)).copy(), None
        else:
            for name, tok in (("bos", bos), ("eos", eos)):
                if tok is None or not 0 <= tok < model.vocab:
                    raise ValueError(f"{name}: expected a token in [0, {model.vocab}), got {tok}")
            self.model, self.bos, self.eos = model, int(bos), int(eos)
        self._enc, self._dec = Recorder(model.encoder), Recorder(model.decoder)
        n_enc, n_dec = _core.param_count(model.encoder.c_model), _core.param_count(model.decoder.c_model)
        arrays = [("head_weight", model.head_weight), ("head_bias", model.head_bias),
                  ("embedding", model.embedding)]
        if model.bridge is not None:
            arrays += [("bridge_weight", model.bridge[0]), ("bridge_bias", model.bridge[1])]
        arrays = [(k, a) for k, a in arrays if a is not None]
        n = n_enc + n_dec + sum(a.size for _, a in arrays)
        self.params = np.empty(n, dtype=np.float32)
        self.grads = np.zeros(n, dtype=np.float32)
        self._enc_slice, self._dec_slice = slice(0, n_enc), slice(n_enc, n_enc + n_dec)
        _core.get_params(model.encoder.c_model, self.params[self._enc_slice])
        _core.get_params(model.decoder.c_model, self.params[self._dec_slice])
        at, self._views, self._grad_views = n_enc + n_dec, {}, {}
        for key, a in arrays:
            self.params[at:at + a.size] = a.reshape(-1)
            self._views[key] = self.params[at:at + a.size].reshape(a.shape)
            self._grad_views[key] = self.grads[at:at + a.size].reshape(a.shape)
            at += a.size
        v = self._views
        model.head_weight, model.head_bias, model.embedding = v["head_weight"], v.get("head_bias"), v.get("embedding")
        if model.bridge is not None:
            model.bridge = (v["bridge_weight"], v.get("bridge_bias"))

    def sync(self) -> None:
        """Push ``params`` into the encoder's and decoder's C models (after an update)."""
        _core.set_params(self.model.encoder.c_model, self.params[self._enc_slice])
        _core.set_params(self.model.decoder.c_model, self.params[self._dec_slice])

    def zero_grad(self) -> None:
        """Set ``grads`` to zero."""
        self.grads.fill(0.0)

    # ---- forward and backward ----------------------------------------------------------
    def _targets(self, targets):
        """Decoder inputs [T_out, B] (bos, then the targets), targets [T_out, B] (the targets,
        then eos), both eos-padded, and the output lengths."""
        seqs = [np.asarray(t, dtype=np.int64).reshape(-1) for t in targets]
        for i, s in enumerate(seqs):
            if s.size and (s.min() < 0 or s.max() >= self.model.vocab):
                raise ValueError(f"targets[{i}]: expected tokens in [0, {self.model.vocab}), got {s.tolist()}")
        lens = np.array([s.size + 1 for s in seqs], dtype=np.int32)
        T, B = int(lens.max()), len(seqs)
        dec_in = np.full((T, B), self.eos, dtype=np.int64)
        out = np.full((T, B), self.eos, dtype=np.int32)
        for b, s in enumerate(seqs):
            dec_in[0, b] = self.bos
            dec_in[1:s.size + 1, b] = s
            out[:s.size, b] = s
        return dec_in, out, lens

    def _vector_targets(self, targets):
        """Continuous: decoder inputs [T_out, B, V] (bos, then the targets but the last),
        targets [T_out, B, V], both zero-padded, and the output lengths."""
        V = self.model.vocab
        seqs = [np.asarray(as_float32(t, f"targets[{i}]")) for i, t in enumerate(targets)]
        for i, t in enumerate(seqs):
            if t.ndim != 2 or t.shape[1] != V or t.shape[0] < 1:
                raise ValueError(f"targets[{i}]: expected [steps >= 1, {V}] output vectors, got shape {t.shape}")
        lens = np.array([t.shape[0] for t in seqs], dtype=np.int32)
        T, B = int(lens.max()), len(seqs)
        dec_in = np.zeros((T, B, V), dtype=np.float32)
        out = np.zeros((T, B, V), dtype=np.float32)
        dec_in[0] = self.bos
        for b, t in enumerate(seqs):
            dec_in[1:len(t), b] = t[:-1]
            out[:len(t), b] = t
        return dec_in, out, lens

    def _encode(self, x, lengths, tbptt):
        """The encoder's recorded forward: all of x, or only each sequence's last `tbptt` valid
        steps from the state its earlier steps reach (the gradient stops there)."""
        enc = self.model.encoder
        t_ax, b_ax = (1, 0) if enc.batch_first else (0, 1)
        T, B = x.shape[t_ax], x.shape[b_ax]
        h0 = c0 = None
        lens = np.full(B, T, dtype=np.int32) if lengths is None else lengths
        if tbptt is not None and lens.max() > tbptt:
            start = np.maximum(lens - tbptt, 0)   # each sequence's first step with a gradient
            h0, c0 = self._prefix_states(x, start)
            # each sequence's recorded steps moved to t = 0; past its end: padding, never read
            steps = np.minimum(start[None, :] + np.arange(min(int(lens.max()), tbptt))[:, None], T - 1)
            x = x[np.arange(B)[:, None], steps.T] if enc.batch_first else x[steps, np.arange(B)]
            lengths = None if lengths is None else np.ascontiguousarray(lens - start, dtype=np.int32)
        _, h_n, c_n = self._enc.forward(np.ascontiguousarray(x), h0, c0, lengths)
        return h_n, c_n

    def _prefix_states(self, x, start):
        """The encoder's states after each sequence's first start[b] steps (zeros where 0),
        without recording."""
        enc = self.model.encoder
        b_ax = 0 if enc.batch_first else 1
        rows = np.flatnonzero(start)
        prefix = np.take(np.take(x, rows, axis=b_ax), np.arange(int(start.max())), axis=1 - b_ax)
        _, state = enc(np.ascontiguousarray(prefix), lengths=start[rows])
        states = []
        for s in (state if self.model._enc_lstm else (state,)):
            s = np.asarray(s, dtype=np.float32)
            full = np.zeros((s.shape[0], x.shape[b_ax], s.shape[2]), dtype=np.float32)
            full[:, rows] = s
            states.append(full)
        return states[0], (states[1] if len(states) > 1 else None)

    def _bridge_backward(self, s, g):
        """Gradient of bridge(s) = s W^T + b for its output gradient g; returns d s."""
        if self.model.bridge is None:
            return g
        w = self.model.bridge[0]
        self._grad_views["bridge_weight"] += (g.reshape(-1, g.shape[-1]).T @ s.reshape(-1, s.shape[-1]))
        if "bridge_bias" in self._grad_views:
            self._grad_views["bridge_bias"] += g.reshape(-1, g.shape[-1]).sum(0)
        return np.ascontiguousarray(g @ w, dtype=np.float32)

    def _unlayer(self, g):
        """[L, B, D * F] -> [L * D, B, F]: the inverse of the model's per-layer concatenation."""
        enc = self.model.encoder
        L, D, B = enc.num_layers, enc.num_directions, g.shape[1]
        return np.ascontiguousarray(g.reshape(L, B, D, -1).transpose(0, 2, 1, 3).reshape(L * D, B, -1))

    def loss_and_grad(self, x: Any, targets: Sequence[Any], lengths: Any = None, *,
                      tbptt: Optional[int] = None) -> float:
        """One teacher-forced forward and backward; gradients are added to ``grads``.

        Parameters
        ----------
        x : array_like
            Encoder input ``[T, B, I]`` (``[B, T, I]`` if the encoder is batch_first).
        targets : sequence of array_like
            B targets of any lengths: token sequences (eos not included), or for a
            continuous model ``[T_b, V]`` output vectors.
        lengths : array_like of int, optional
            ``[B]`` input lengths.
        tbptt : int, optional
            Back-propagate through each sequence's last `tbptt` valid input steps only (long
            inputs); its earlier steps run forward only and give the starting state.

        Returns
        -------
        float
            The mean cross-entropy per output token (eos included), or for a continuous
            model the mean squared error per output value.

        Raises
        ------
        ValueError
            Shapes that do not fit, tokens outside the vocabulary, `tbptt` < 1.

        Examples
        --------
        >>> import numpy as np, fastseq
        >>> from fastseq import train
        >>> m = fastseq.Seq2Seq(fastseq.GRU(3, 8), fastseq.GRU(4, 8), (np.zeros((5, 8)), None),
        ...                     np.zeros((5, 4)))
        >>> loss = train.Seq2SeqTrainer(m, bos=0, eos=1).loss_and_grad(np.zeros((6, 2, 3)), [[2], [3, 4]])
        """
        m = self.model
        x = as_float32(x, "x")
        if x.ndim != 3 or x.shape[-1] != m.encoder.input_size:
            raise ValueError(f"x: expected a 3-D input with {m.encoder.input_size} features, got shape {x.shape}")
        B = x.shape[0] if m.encoder.batch_first else x.shape[1]
        if len(targets) != B:
            raise ValueError(f"targets: expected {B} sequences (one per input), got {len(targets)}")
        lens = None if lengths is None else as_lengths(lengths, B)
        if tbptt is not None and (not isinstance(tbptt, (int, np.integer)) or isinstance(tbptt, bool) or tbptt < 1):
            raise ValueError(f"tbptt: expected an integer >= 1 (steps back-propagated), got {tbptt!r}")
        enc_h, enc_c = self._encode(x, lens, tbptt)
        s_h = m._layer_states(enc_h, m.encoder.output_features)
        s_c = None if enc_c is None else m._layer_states(enc_c, m.encoder.hidden_size)
        h0, c0 = m.initial_states(enc_h, enc_c)

        dec_in, out, out_lens = self._vector_targets(targets) if self.continuous else self._targets(targets)
        bf = m.decoder.batch_first
        if bf:
            dec_in, out = dec_in.swapaxes(0, 1), out.swapaxes(0, 1)
        xd = dec_in if self.continuous else m.embedding[dec_in]
        y, _, _ = self._dec.forward(np.ascontiguousarray(xd), h0, c0, out_lens)
        logits = np.empty(y.shape[:-1] + (m.vocab,), dtype=np.float32)
        _core.linear_forward(y, m.head_weight, m.head_bias, logits)
        mask = (np.arange(out.shape[1 if bf else 0])[:, None] < out_lens[None, :]).astype(np.float32)
        mask = np.ascontiguousarray(mask.T if bf else mask)
        grad_logits = np.empty_like(logits)
        loss_fn = _core.mse_loss if self.continuous else _core.xent_loss
        loss = loss_fn(logits, np.ascontiguousarray(out), mask, grad_logits, m.vocab)

        gy = np.empty(y.shape, dtype=np.float32)
        _core.linear_backward(y, m.head_weight, grad_logits, gy, self._grad_views["head_weight"],
                              self._grad_views.get("head_bias"))
        gx, gh0, gc0 = self._dec.backward(gy, None, None, self.grads[self._dec_slice], accumulate=True,
                                          want_input=not self.continuous)
        if not self.continuous:   # a continuous decoder reads the targets: nothing to learn there
            np.add.at(self._grad_views["embedding"], dec_in, gx)
        g_h = self._unlayer(self._bridge_backward(s_h, gh0))
        g_c = None
        if s_c is not None and gc0 is not None:
            g_c = self._unlayer(self._bridge_backward(s_c, gc0))
        self._enc.backward(None, g_h, g_c, self.grads[self._enc_slice], accumulate=True, want_input=False,
                           want_state=False)
        return float(loss)


def fit_seq2seq(trainer: Seq2SeqTrainer, x: Any, targets: Sequence[Any], *, lengths: Any = None,
                optimizer: Any = "adam", epochs: int = 1, batch_size: int = 32, seed: Optional[int] = 0,
                clip_norm: Optional[float] = None, tbptt: Optional[int] = None, progress: bool = True,
                callback: Optional[Callable[[int, History], Any]] = None) -> History:
    """Mini-batch teacher-forcing training of a Seq2Seq; returns the loss history.

    Parameters
    ----------
    trainer : Seq2SeqTrainer
        The model's parameters and its bos / eos.
    x : array_like
        Encoder inputs ``[T, N, I]`` (``[N, T, I]`` if the encoder is batch_first).
    targets : sequence of array_like
        N targets of any lengths: token sequences (eos not included), or ``[T_n, V]``
        output vectors for a continuous model.
    lengths : array_like of int, optional
        ``[N]`` input lengths.
    optimizer : str, tuple or optimizer
        As for :func:`fastseq.train.fit` (``"adam"``, ``("adam", {"lr": 1e-2})``, ...).
    epochs, batch_size : int
        Passes over the data; sequences per update.
    seed : int, optional
        Shuffling seed.
    clip_norm : float, optional
        Global gradient-norm clipping before each update.
    tbptt : int, optional
        Truncate the encoder's backward to each sequence's last `tbptt` valid steps.
    progress : bool
        A progress bar per epoch on stderr.
    callback : callable, optional
        ``callback(epoch, history)`` after each epoch; a true result stops training.

    Returns
    -------
    History
        ``{"loss": [mean per epoch], "batch_loss": [each update's]}``.

    Raises
    ------
    ValueError
        Inputs and targets that disagree in number, bad epochs or batch_size.

    Examples
    --------
    >>> import numpy as np, fastseq
    >>> from fastseq import train
    >>> m = fastseq.Seq2Seq(fastseq.GRU(3, 8), fastseq.GRU(4, 8), (np.zeros((5, 8)), None),
    ...                     np.zeros((5, 4)))
    >>> h = train.fit_seq2seq(train.Seq2SeqTrainer(m, bos=0, eos=1), np.zeros((6, 4, 3)),
    ...                       [[2], [3], [2, 3], [4]], epochs=2, batch_size=2, progress=False)
    >>> len(h["loss"])
    2
    """
    for name, value, low in (("epochs", epochs, 0), ("batch_size", batch_size, 1)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
            raise ValueError(f"{name}: expected an integer >= {low}, got {value!r}")
    x = as_float32(x, "x")
    b_ax = 0 if trainer.model.encoder.batch_first else 1
    N = x.shape[b_ax] if x.ndim == 3 else -1
    if len(targets) != N:
        raise ValueError(f"targets: expected {N} sequences (x's batch axis), got {len(targets)}")
    lens = None if lengths is None else as_lengths(lengths, N)
    opt = make_optimizer(optimizer, trainer)
    rng = np.random.default_rng(seed)
    n_batches = (N + batch_size - 1) // batch_size
    bar = EpochProgress(epochs, n_batches, progress)
    history = History(loss=[], batch_loss=[])
    for epoch in range(epochs):
        t0 = time.monotonic()
        order = rng.permutation(N)
        total = 0.0
        bar.start_epoch(epoch)
        for b in range(n_batches):
            idx = np.sort(order[b * batch_size:(b + 1) * batch_size])
            trainer.zero_grad()
            lb = None if lens is None else lens[idx]
            if lb is not None:  # trim the padding no sequence of this batch reaches
                idx_x = np.take(x, np.arange(int(lb.max())), axis=1 - b_ax)
            else:
                idx_x = x
            loss = trainer.loss_and_grad(np.take(idx_x, idx, axis=b_ax), [targets[i] for i in idx], lb,
                                         tbptt=tbptt)
            if clip_norm is not None:
                clip_grad_norm(trainer.grads, clip_norm)
            opt.step()
            history["batch_loss"].append(loss)
            total += loss * len(idx)
            bar.update(total / (b * batch_size + len(idx)))
        history["loss"].append(total / N)
        bar.end_epoch(epoch, total / N, time.monotonic() - t0)
        if callback is not None and callback(epoch, history):
            break
    return history


__all__: List[str] = ["Seq2SeqTrainer", "fit_seq2seq"]
