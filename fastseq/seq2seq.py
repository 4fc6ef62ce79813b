"""Encoder-decoder (sequence to sequence) with greedy, beam and continuous decoding in C.

    model = fastseq.Seq2Seq(encoder, decoder, (head_weight, head_bias), embedding)
    tokens = model.greedy(x, lengths, max_len=30, bos=1, eos=2)   # one int32 array per sequence
    best, log_p = model.beam(x, lengths, beam_size=4, max_len=30, bos=1, eos=2)

The encoder's final states start the decoder: per layer, the directions' h (and c) are
concatenated (forward first) and mapped by the bridge ``h0 = bridge_weight @ enc + bridge_bias``
(the same affine map for h and for c; no nonlinearity), or copied when no bridge is given.
The whole decode loop (embedding lookup, every decoder layer, head, argmax / beam top-k,
stop per sequence) runs in C, one call per batch.
"""
from typing import Any, List, Optional, Tuple

import numpy as np

from . import _core
from ._arrays import as_float32, as_lengths


def _pair(value, name):
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(f"{name}: expected a pair (weight, bias) (bias may be None), got {type(value).__name__}")
    weight = np.ascontiguousarray(as_float32(value[0], f"{name} weight"))
    bias = None if value[1] is None else np.ascontiguousarray(as_float32(value[1], f"{name} bias"))
    if weight.ndim != 2:
        raise ValueError(f"{name} weight: expected 2-D [out, in], got shape {weight.shape}")
    if bias is not None and bias.shape != weight.shape[:1]:
        raise ValueError(f"{name} bias: expected shape {weight.shape[:1]}, got {bias.shape}")
    return weight, bias


class Seq2Seq:
    """An encoder-decoder: a fastseq encoder layer, a unidirectional decoder layer, a linear head.

    Parameters
    ----------
    encoder : fastseq layer
        ``LSTM``, ``GRU``, ``RNN``, ``FastRNN`` or ``FastGRNN``; multi-layer and bidirectional
        allowed; ``num_layers`` equal to the decoder's.
    decoder : fastseq layer
        Unidirectional. Its input is the embedding of the previous token (``input_size`` = E),
        or, without an embedding, the previous head output (``input_size`` = V).
    head : (array_like, array_like or None)
        ``(weight [V, F], bias [V])``, F the decoder's features of h (torch's nn.Linear).
    embedding : array_like, optional
        ``[V, E]`` token embedding; None for continuous outputs.
    bridge : (array_like, array_like or None), optional
        ``(weight [F_dec, D * F_enc], bias [F_dec])``: the affine map from an encoder layer's
        final state (directions concatenated) to the decoder layer's, applied to h and, when
        both are LSTMs, to c. None: copied (sizes must match). A decoder LSTM after an
        encoder without a cell state starts from c = 0.

    Raises
    ------
    ValueError
        Layers, head, embedding or bridge whose shapes do not fit (named, expected vs given).

    Examples
    --------
    >>> import numpy as np, fastseq
    >>> enc, dec = fastseq.GRU(3, 8), fastseq.GRU(4, 8)
    >>> head = (np.zeros((5, 8), np.float32), np.zeros(5, np.float32))
    >>> model = fastseq.Seq2Seq(enc, dec, head, embedding=np.zeros((5, 4), np.float32))
    >>> model.vocab
    5
    """

    def __init__(self, encoder: Any, decoder: Any, head: Any, embedding: Any = None, bridge: Any = None):
        self.encoder, self.decoder = encoder, decoder
        if decoder.num_directions != 1:
            raise ValueError("decoder: expected a unidirectional layer (it runs step by step), got a bidirectional one")
        if encoder.num_layers != decoder.num_layers:
            raise ValueError(f"decoder: expected num_layers {encoder.num_layers} (the encoder's, one state per "
                             f"layer), got {decoder.num_layers}")
        self.head_weight, self.head_bias = _pair(head, "head")
        self.vocab = int(self.head_weight.shape[0])
        if self.head_weight.shape[1] != decoder.output_features:
            raise ValueError(f"head weight: expected shape ({self.vocab}, {decoder.output_features}) "
                             f"(decoder features), got {self.head_weight.shape}")
        self.embedding = None
        if embedding is not None:
            self.embedding = np.ascontiguousarray(as_float32(embedding, "embedding"))
            if self.embedding.shape != (self.vocab, decoder.input_size):
                raise ValueError(f"embedding: expected shape ({self.vocab}, {decoder.input_size}) (vocab, decoder "
                                 f"input_size), got {self.embedding.shape}")
        elif decoder.input_size != self.vocab:
            raise ValueError(f"decoder input_size: expected {self.vocab} (continuous outputs are fed back), "
                             f"got {decoder.input_size}")
        self._enc_lstm, self._dec_lstm = encoder.mode == "LSTM", decoder.mode == "LSTM"
        d_in = encoder.num_directions * encoder.output_features
        self.bridge = None if bridge is None else _pair(bridge, "bridge")
        maps_c = self._enc_lstm and self._dec_lstm
        if self.bridge is not None:
            want = (decoder.output_features, d_in)
            if self.bridge[0].shape != want:
                raise ValueError(f"bridge weight: expected shape {want} (decoder features, directions x encoder "
                                 f"features), got {self.bridge[0].shape}")
            if maps_c and (encoder.hidden_size != encoder.output_features
                           or decoder.hidden_size != decoder.output_features):
                raise ValueError("bridge: one map for h and c needs LSTMs without proj_size")
        else:
            for what, got, want in (("h", d_in, decoder.output_features),
                                    ("c", encoder.num_directions * encoder.hidden_size, decoder.hidden_size)):
                if (what == "h" or maps_c) and got != want:
                    raise ValueError(f"bridge: without one the encoder's final {what} is copied: expected "
                                     f"directions x encoder size == decoder size {want}, got {got}")

    # ---- encoder -----------------------------------------------------------------------
    def _layer_states(self, state, features):
        """[L * D, B, F] -> [L, B, D * F]: each layer's directions side by side."""
        L, D = self.encoder.num_layers, self.encoder.num_directions
        s = np.asarray(state, dtype=np.float32)
        B = s.shape[1]
        return np.ascontiguousarray(s.reshape(L, D, B, features).transpose(0, 2, 1, 3).reshape(L, B, D * features))

    def _bridge(self, s):
        if self.bridge is None:
            return s
        w, b = self.bridge
        out = s @ w.T
        return np.ascontiguousarray(out if b is None else out + b, dtype=np.float32)

    def initial_states(self, enc_h: Any, enc_c: Any = None) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        """The decoder's initial states from the encoder's final ones.

        Parameters
        ----------
        enc_h, enc_c : array_like
            The encoder's ``h_n`` ``[L * D, B, F]`` and ``c_n`` (LSTM; else None).

        Returns
        -------
        h0, c0
            ``[L, B, F_dec]`` and ``[L, B, H_dec]`` (None unless the decoder is an LSTM).

        Examples
        --------
        >>> import numpy as np, fastseq
        >>> m = fastseq.Seq2Seq(fastseq.GRU(3, 8), fastseq.GRU(4, 8), (np.zeros((5, 8)), None),
        ...                     np.zeros((5, 4)))
        >>> m.initial_states(np.zeros((1, 2, 8)))[0].shape
        (1, 2, 8)
        """
        h0 = self._bridge(self._layer_states(enc_h, self.encoder.output_features))
        c0 = None
        if self._dec_lstm:
            if self._enc_lstm:
                c0 = self._bridge(self._layer_states(enc_c, self.encoder.hidden_size))
            else:
                c0 = np.zeros((h0.shape[0], h0.shape[1], self.decoder.hidden_size), dtype=np.float32)
        return h0, c0

    def encode(self, x: Any, lengths: Any = None) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        """Run the encoder and return the decoder's initial states (see :meth:`initial_states`).

        Parameters
        ----------
        x : array_like
            ``[T, B, I]`` (``[B, T, I]`` if the encoder is batch_first).
        lengths : array_like of int, optional
            ``[B]`` valid steps per input sequence.

        Returns
        -------
        h0, c0
            ``[L, B, F_dec]``, ``[L, B, H_dec]`` or None.

        Examples
        --------
        >>> import numpy as np, fastseq
        >>> m = fastseq.Seq2Seq(fastseq.GRU(3, 8), fastseq.GRU(4, 8), (np.zeros((5, 8)), None),
        ...                     np.zeros((5, 4)))
        >>> m.encode(np.zeros((6, 2, 3)))[0].shape
        (1, 2, 8)
        """
        x = as_float32(x, "x")
        order = None
        if lengths is not None and x.ndim == 3:
            # longest first: the driver's products then skip the finished rows at every step
            axis = 0 if self.encoder.batch_first else 1
            lens = as_lengths(lengths, x.shape[axis])
            order = np.argsort(-lens, kind="stable")
            x, lengths = np.take(x, order, axis=axis), lens[order]
        _, state = self.encoder(x, lengths=lengths)
        enc_h, enc_c = state if self._enc_lstm else (state, None)
        if order is not None:   # back to the caller's order
            inverse = np.argsort(order)
            enc_h = np.asarray(enc_h)[:, inverse]
            enc_c = None if enc_c is None else np.asarray(enc_c)[:, inverse]
        return self.initial_states(np.asarray(enc_h), None if enc_c is None else np.asarray(enc_c))

    # ---- decoding ----------------------------------------------------------------------
    def _check_decode(self, tokens, max_len):
        if tokens and self.embedding is None:
            raise ValueError("greedy/beam over tokens needs an embedding; this model has continuous outputs")
        if not isinstance(max_len, (int, np.integer)) or isinstance(max_len, bool) or max_len < 1:
            raise ValueError(f"max_len: expected an integer >= 1, got {max_len!r}")

    def _tokens(self, x, lengths, max_len, bos, eos, beam_size, length_penalty):
        self._check_decode(True, max_len)
        h0, c0 = self.encode(x, lengths)
        tokens, lens, scores = _core.decode_tokens(
            self.decoder.c_model, self.vocab, self.head_weight, self.head_bias, self.embedding, h0, c0,
            h0.shape[1], int(max_len), int(bos), -1 if eos is None else int(eos), beam_size, float(length_penalty))
        return [tokens[b, :lens[b]].copy() for b in range(len(lens))], scores

    def greedy(self, x: Any, lengths: Any = None, *, max_len: int, bos: Any = 0, eos: Optional[int] = None,
               return_scores: bool = False) -> Any:
        """Greedy decoding in C: argmax at every step, each sequence stopping at its own `eos`.

        Parameters
        ----------
        x : array_like
            Encoder input ``[T, B, I]`` (``[B, T, I]`` if the encoder is batch_first).
        lengths : array_like of int, optional
            ``[B]`` input lengths.
        max_len : int
            The most steps decoded.
        bos : int or array_like
            Tokens: the start token. Continuous: the first input, ``[V]`` or ``[B, V]``
            (0: zeros).
        eos : int, optional
            Tokens: the end token (not included in the output; None: run to `max_len`).
            Continuous: a stop channel; a sequence ends after the first step whose output
            there is above 0 (a stop logit).
        return_scores : bool
            Tokens: also return each sequence's log-probability (eos included).

        Returns
        -------
        list of numpy.ndarray, or (outputs, lengths)
            Tokens: one int32 array per sequence (and a float32 ``[B]`` of log-probabilities
            when `return_scores`). Continuous: outputs ``[B, max_len, V]`` (zeros past a
            sequence's length) and lengths ``[B]`` int32.

        Raises
        ------
        ValueError
            Shapes that do not fit, `bos` or `eos` outside the vocabulary, `max_len` < 1.

        Examples
        --------
        >>> import numpy as np, fastseq
        >>> m = fastseq.Seq2Seq(fastseq.GRU(3, 8), fastseq.GRU(4, 8), (np.zeros((5, 8)), None),
        ...                     np.zeros((5, 4)))
        >>> [t.tolist() for t in m.greedy(np.zeros((6, 2, 3)), max_len=3, bos=1, eos=4)]
        [[0, 0, 0], [0, 0, 0]]
        """
        if self.embedding is None:
            self._check_decode(False, max_len)
            h0, c0 = self.encode(x, lengths)
            B = h0.shape[1]
            start = np.ascontiguousarray(np.broadcast_to(as_float32(bos, "bos"), (B, self.vocab)))
            return _core.decode_continuous(self.decoder.c_model, self.vocab, self.head_weight, self.head_bias,
                                           h0, c0, start, B, int(max_len), -1 if eos is None else int(eos))
        seqs, scores = self._tokens(x, lengths, max_len, bos, eos, 0, 0.0)
        return (seqs, scores) if return_scores else seqs

    def beam(self, x: Any, lengths: Any = None, *, beam_size: int = 4, max_len: int, bos: int = 0,
             eos: Optional[int] = None, length_penalty: float = 0.0) -> Tuple[List[np.ndarray], np.ndarray]:
        """Beam search in C; the best hypothesis per sequence.

        Hypotheses are ranked by log-probability; a finished one (ending in `eos`) is scored
        ``log P / ((5 + n) / 6) ** length_penalty`` (GNMT; n its tokens with eos). A sequence
        stops once no live hypothesis can beat its best finished one. Ties go to the lowest
        (hypothesis, token) index: the result is deterministic.

        Parameters
        ----------
        x, lengths
            As for :meth:`greedy`.
        beam_size : int
            Hypotheses kept per sequence (1: greedy's result when `length_penalty` is 0).
        max_len : int
            The most tokens per hypothesis (eos excluded).
        bos, eos : int
            Start and end tokens (eos None: every hypothesis runs to `max_len`).
        length_penalty : float
            GNMT's alpha (0: none; larger favours longer outputs).

        Returns
        -------
        sequences, scores
            One int32 array per sequence (eos excluded) and their log-probabilities
            ``[B]`` float32 (without the penalty).

        Raises
        ------
        ValueError
            As :meth:`greedy`; `beam_size` < 1.

        Examples
        --------
        >>> import numpy as np, fastseq
        >>> m = fastseq.Seq2Seq(fastseq.GRU(3, 8), fastseq.GRU(4, 8), (np.zeros((5, 8)), None),
        ...                     np.zeros((5, 4)))
        >>> seqs, scores = m.beam(np.zeros((6, 2, 3)), beam_size=2, max_len=3, bos=1, eos=4)
        >>> len(seqs), scores.shape
        (2, (2,))
        """
        if not isinstance(beam_size, (int, np.integer)) or isinstance(beam_size, bool) or beam_size < 1:
            raise ValueError(f"beam_size: expected an integer >= 1, got {beam_size!r}")
        return self._tokens(x, lengths, max_len, bos, eos, int(beam_size), length_penalty)

    # ---- conversion --------------------------------------------------------------------
    @classmethod
    def from_torch(cls, module: Any) -> "Seq2Seq":
        """Convert a :class:`fastseq.torch.Seq2Seq` reference module, weights included.

        Parameters
        ----------
        module : fastseq.torch.Seq2Seq

        Returns
        -------
        Seq2Seq

        Raises
        ------
        TypeError
            Another kind of module.

        Examples
        --------
        >>> import torch, fastseq, fastseq.torch as ft
        >>> ref = ft.Seq2Seq(torch.nn.GRU(3, 8), torch.nn.GRU(4, 8), torch.nn.Linear(8, 5),
        ...                  torch.nn.Embedding(5, 4))
        >>> fastseq.Seq2Seq.from_torch(ref).vocab
        5
        """
        from .convert import from_torch
        from .torch import Seq2Seq as Reference

        if not isinstance(module, Reference):
            raise TypeError(f"from_torch: expected a fastseq.torch.Seq2Seq, got {type(module).__name__}")

        def arrays(linear):
            bias = None if linear.bias is None else linear.bias.detach().numpy()
            return linear.weight.detach().numpy(), bias

        emb = None if module.embedding is None else module.embedding.weight.detach().numpy()
        bridge = None if module.bridge is None else arrays(module.bridge)
        return cls(from_torch(module.encoder), from_torch(module.decoder), arrays(module.head), emb, bridge)
