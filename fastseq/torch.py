"""Reference PyTorch modules for the cells torch lacks: FastRNN, FastGRNN, UGRNN, PeepholeLSTM,
CoupledLSTM (CIFG) and ResetBeforeGRU; and ResidualStack, single-layer modules stacked with
residual connections (a fastseq layer with ``residual=True``). Plain `nn.Module`s written from the equations in
docs/equations.md in the repository, trainable with autograd; train them here and convert them with
`fastseq.from_torch`.

Imported only on demand (`import fastseq.torch`); `import fastseq` never imports torch.

Every module follows torch's sequence-layer conventions:

    m = FastGRNN(input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 bidirectional=False, ...)
    output, h_n = m(x, hx=None, lengths=None)            # FastRNN, FastGRNN, UGRNN, ResetBeforeGRU
    output, (h_n, c_n) = m(x, (h0, c0), lengths=None)    # PeepholeLSTM, CoupledLSTM

x is [T, B, I] ([B, T, I] if batch_first) or unbatched [T, I]; output [T, B, D*H];
h_n, c_n [L*D, B, H]. `lengths` (B ints in [1, T]) gives packed-sequence semantics:
outputs past a sequence's end are zero, its final state is the one at its last valid step,
and the reverse direction starts at that step. Parameters are named like torch's, with the
suffix `_l{k}` and `_reverse` for the backward direction.
"""
import math
import numbers

import torch
from torch import nn

__all__ = ["FastRNN", "FastGRNN", "UGRNN", "PeepholeLSTM", "CoupledLSTM", "ResetBeforeGRU", "ResidualStack"]

_NONLINEARITIES = {"tanh": torch.tanh, "sigmoid": torch.sigmoid, "relu": torch.relu,
                   "softsign": nn.functional.softsign, "hard_tanh": lambda a: torch.clamp(a, -1.0, 1.0)}


def _nonlinearity(name, what, alpha=None, beta=None):
    """The function `name`; hard_sigmoid is max(0, min(1, alpha a + beta)), alpha, beta
    default 0.2, 0.5 (ONNX's); the others take neither."""
    if name == "hard_sigmoid":
        alpha, beta = 0.2 if alpha is None else float(alpha), 0.5 if beta is None else float(beta)
        return lambda a: torch.clamp(alpha * a + beta, 0.0, 1.0)
    if name not in _NONLINEARITIES:
        raise ValueError(f"{what}: expected one of {sorted(_NONLINEARITIES) + ['hard_sigmoid']}, got {name!r}")
    if alpha is not None or beta is not None:
        raise ValueError(f"{what}: {name} takes no alpha / beta, got {alpha!r}, {beta!r}")
    return _NONLINEARITIES[name]


def _check_size(name, v, allow_none=False):
    if v is None and allow_none:
        return None
    if not isinstance(v, numbers.Integral) or isinstance(v, bool) or v < 1:
        raise ValueError(f"{name}: expected a positive integer, got {v!r}")
    return int(v)


class _Recurrent(nn.Module):
    """The shared sequence driver: directions, stacking, initial states, lengths masking.

    A subclass declares its parameters in `_add_params(suffix, in_size)` (through `_param`)
    and computes one step in `_step(p, gx, state) -> state`, where `p` maps base parameter
    names to tensors, `gx = _input_proj(p, x)[t]` is the hoisted input projection and
    `state` a tuple of [B, H] tensors whose first entry is h."""

    _n_states = 1

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 bidirectional=False):
        super().__init__()
        self.input_size = _check_size("input_size", input_size)
        self.hidden_size = _check_size("hidden_size", hidden_size)
        self.num_layers = _check_size("num_layers", num_layers)
        self.bias, self.batch_first = bool(bias), bool(batch_first)
        self.bidirectional = bool(bidirectional)
        self._bases, self._fill = [], {}
        for k in range(self.num_layers):
            in_k = self.input_size if k == 0 else self.hidden_size * self.num_directions
            for d in range(self.num_directions):
                self._add_params(self._suffix(k, d), in_k)
        self.reset_parameters()

    @property
    def num_directions(self):
        return 2 if self.bidirectional else 1

    @staticmethod
    def _suffix(layer, direction):
        return f"_l{layer}" + ("_reverse" if direction else "")

    def _param(self, base, suffix, *shape, fill=None):
        """Register `base + suffix`; `fill` is a constant init (else U(-1/sqrt(H), 1/sqrt(H)))."""
        if base not in self._bases:
            self._bases.append(base)
        self.register_parameter(base + suffix, nn.Parameter(torch.empty(*shape)))
        if fill is not None:
            self._fill[base + suffix] = fill

    def reset_parameters(self):
        bound = 1.0 / math.sqrt(self.hidden_size)
        with torch.no_grad():
            for name, p in self.named_parameters():
                if name in self._fill:
                    p.fill_(self._fill[name])
                else:
                    p.uniform_(-bound, bound)

    def _params(self, suffix):
        return {b: getattr(self, b + suffix) for b in self._bases}

    def _add_params(self, suffix, in_size):
        raise NotImplementedError

    def _input_proj(self, p, x):
        raise NotImplementedError

    def _step(self, p, gx, state):
        raise NotImplementedError

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s

    # ---- the driver --------------------------------------------------------------------
    def _initial_states(self, hx, batch, unbatched, like):
        n, H = self.num_layers * self.num_directions, self.hidden_size
        if hx is None:
            zeros = like.new_zeros(n, batch, H)
            hx = (zeros,) * self._n_states
        else:
            if self._n_states == 1:
                hx = (hx,)
            elif not isinstance(hx, (tuple, list)) or len(hx) != self._n_states:
                raise ValueError(f"hx: expected a tuple (h0, c0), got {type(hx).__name__}")
            expect = (n, H) if unbatched else (n, batch, H)
            for name, s in zip(("h0", "c0"), hx):
                if tuple(s.shape) != expect:
                    raise ValueError(f"{name}: expected shape {expect}, got {tuple(s.shape)}")
            if unbatched:
                hx = tuple(s.unsqueeze(1) for s in hx)
        return [tuple(s[i] for s in hx) for i in range(n)]

    def _mask(self, lengths, T, B, device):
        lengths = torch.as_tensor(lengths, device=device)
        if lengths.dim() != 1 or lengths.numel() != B:
            raise ValueError(f"lengths: expected {B} lengths (1-D), got shape {tuple(lengths.shape)}")
        if lengths.is_floating_point() or lengths.is_complex():
            raise ValueError(f"lengths: expected integers, got {lengths.dtype}")
        if B and (int(lengths.min()) < 1 or int(lengths.max()) > T):
            raise ValueError(f"lengths: expected values in [1, {T}], got {lengths.tolist()}")
        return (torch.arange(T, device=device)[:, None] < lengths[None, :]).unsqueeze(-1)

    def forward(self, x, hx=None, lengths=None):
        if x.dim() not in (2, 3):
            raise ValueError(f"x: expected 3-D input [T, B, {self.input_size}] or 2-D [T, "
                             f"{self.input_size}], got shape {tuple(x.shape)}")
        if x.shape[-1] != self.input_size:
            raise ValueError(f"x: expected {self.input_size} input features, got shape {tuple(x.shape)}")
        unbatched = x.dim() == 2
        if unbatched:
            x = x.unsqueeze(1)
        elif self.batch_first:
            x = x.transpose(0, 1)
        T, B = x.shape[0], x.shape[1]
        states = self._initial_states(hx, B, unbatched, x)
        mask = None if lengths is None else self._mask(lengths, T, B, x.device)

        layer_in, finals = x, []
        for k in range(self.num_layers):
            outs = []
            for d in range(self.num_directions):
                p = self._params(self._suffix(k, d))
                gx = self._input_proj(p, layer_in)
                state = states[k * self.num_directions + d]
                ys = [None] * T
                for t in (range(T - 1, -1, -1) if d else range(T)):
                    new = self._step(p, gx[t], state)
                    if mask is not None:   # hold the state and zero the output past the end
                        new = tuple(torch.where(mask[t], a, b) for a, b in zip(new, state))
                        ys[t] = torch.where(mask[t], new[0], torch.zeros_like(new[0]))
                    else:
                        ys[t] = new[0]
                    state = new
                outs.append(torch.stack(ys) if T else layer_in.new_zeros(0, B, self.hidden_size))
                finals.append(state)
            layer_in = torch.cat(outs, -1) if len(outs) > 1 else outs[0]

        output = layer_in
        final = tuple(torch.stack([s[i] for s in finals]) for i in range(self._n_states))
        if unbatched:
            output = output.squeeze(1)
            final = tuple(s.squeeze(1) for s in final)
        elif self.batch_first:
            output = output.transpose(0, 1)
        return output, (final if self._n_states > 1 else final[0])


class _LowRank(_Recurrent):
    """W and U, each either full rank or a pair of factors (W x = b @ (a @ x)); the
    `_gates` gates' rows stacked ([G*H, in], or b [G*H, rank] with one shared a)."""

    _gates = 1

    def __init__(self, input_size, hidden_size, num_layers, bias, batch_first, bidirectional,
                 w_rank, u_rank):
        self.w_rank = _check_size("w_rank", w_rank, allow_none=True)
        self.u_rank = _check_size("u_rank", u_rank, allow_none=True)
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, bidirectional)

    def _add_matrix(self, base, suffix, rank, in_size):
        H = self._gates * self.hidden_size
        if rank is None:
            self._param(base, suffix, H, in_size)
        else:
            self._param(base + "_a", suffix, rank, in_size)
            self._param(base + "_b", suffix, H, rank)

    @staticmethod
    def _apply(p, base, x):
        if p.get(base) is not None:
            return x @ p[base].T
        return (x @ p[base + "_a"].T) @ p[base + "_b"].T

    def _add_weights(self, suffix, in_size):
        self._add_matrix("weight_ih", suffix, self.w_rank, in_size)
        self._add_matrix("weight_hh", suffix, self.u_rank, self.hidden_size)

    def extra_repr(self):
        s = super().extra_repr()
        for name in ("w_rank", "u_rank"):
            if getattr(self, name) is not None:
                s += f", {name}={getattr(self, name)}"
        return s


class FastRNN(_LowRank):
    """FastRNN (EdgeML FastRNNCell): h~ = phi(W x + U h + b); h' = sigmoid(alpha) h~ + sigmoid(beta) h.

    phi: tanh, sigmoid, relu, softsign, hard_tanh or hard_sigmoid (`nonlinearity_alpha`,
    `nonlinearity_beta`: its alpha, beta). Parameters per layer/direction: `weight_ih` [H, I] or `weight_ih_a` [w_rank, I] +
    `weight_ih_b` [H, w_rank]; `weight_hh` [H, H] or `weight_hh_a` [u_rank, H] + `weight_hh_b`
    [H, u_rank]; `bias` [H] (if bias); `alpha`, `beta` [1] (raw, before the sigmoid)."""

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 bidirectional=False, nonlinearity="tanh", w_rank=None, u_rank=None,
                 alpha_init=-3.0, beta_init=3.0, nonlinearity_alpha=None, nonlinearity_beta=None):
        self._phi = _nonlinearity(nonlinearity, "nonlinearity", nonlinearity_alpha, nonlinearity_beta)
        self.nonlinearity = nonlinearity
        self.nonlinearity_alpha, self.nonlinearity_beta = nonlinearity_alpha, nonlinearity_beta
        self.alpha_init, self.beta_init = float(alpha_init), float(beta_init)
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, bidirectional,
                         w_rank, u_rank)

    def _add_params(self, suffix, in_size):
        self._add_weights(suffix, in_size)
        if self.bias:
            self._param("bias", suffix, self.hidden_size)
        self._param("alpha", suffix, 1, fill=self.alpha_init)
        self._param("beta", suffix, 1, fill=self.beta_init)

    def _input_proj(self, p, x):
        wx = self._apply(p, "weight_ih", x)
        return wx + p["bias"] if self.bias else wx

    def _step(self, p, gx, state):
        h = state[0]
        h_tilde = self._phi(gx + self._apply(p, "weight_hh", h))
        return (torch.sigmoid(p["alpha"]) * h_tilde + torch.sigmoid(p["beta"]) * h,)

    def extra_repr(self):
        s = super().extra_repr()
        return s + (f", nonlinearity={self.nonlinearity!r}" if self.nonlinearity != "tanh" else "")


class FastGRNN(_LowRank):
    """FastGRNN (EdgeML FastGRNNCell): pre = W x + U h; z = gate_nl(pre + bias_gate);
    h~ = update_nl(pre + bias_update); h' = z h + (sigmoid(zeta) (1 - z) + sigmoid(nu)) h~.

    gate_nl, update_nl: as FastRNN's phi (`gate_alpha`, ..., `update_beta`: hard_sigmoid's).
    Parameters: W and U as in FastRNN; `bias_gate`, `bias_update` [H] (if bias); `zeta`, `nu` [1]."""

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 bidirectional=False, gate_nonlinearity="sigmoid", update_nonlinearity="tanh",
                 w_rank=None, u_rank=None, zeta_init=1.0, nu_init=-4.0, gate_alpha=None, gate_beta=None,
                 update_alpha=None, update_beta=None):
        self._gate = _nonlinearity(gate_nonlinearity, "gate_nonlinearity", gate_alpha, gate_beta)
        self._update = _nonlinearity(update_nonlinearity, "update_nonlinearity", update_alpha, update_beta)
        self.gate_nonlinearity, self.update_nonlinearity = gate_nonlinearity, update_nonlinearity
        self.gate_alpha, self.gate_beta, self.update_alpha, self.update_beta = gate_alpha, gate_beta, update_alpha, update_beta
        self.zeta_init, self.nu_init = float(zeta_init), float(nu_init)
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, bidirectional,
                         w_rank, u_rank)

    def _add_params(self, suffix, in_size):
        self._add_weights(suffix, in_size)
        if self.bias:
            self._param("bias_gate", suffix, self.hidden_size)
            self._param("bias_update", suffix, self.hidden_size)
        self._param("zeta", suffix, 1, fill=self.zeta_init)
        self._param("nu", suffix, 1, fill=self.nu_init)

    def _input_proj(self, p, x):
        return self._apply(p, "weight_ih", x)

    def _step(self, p, gx, state):
        h = state[0]
        pre = gx + self._apply(p, "weight_hh", h)
        z = self._gate(pre + p["bias_gate"] if self.bias else pre)
        h_tilde = self._update(pre + p["bias_update"] if self.bias else pre)
        return (z * h + (torch.sigmoid(p["zeta"]) * (1.0 - z) + torch.sigmoid(p["nu"])) * h_tilde,)

    def extra_repr(self):
        s = super().extra_repr()
        if self.gate_nonlinearity != "sigmoid":
            s += f", gate_nonlinearity={self.gate_nonlinearity!r}"
        if self.update_nonlinearity != "tanh":
            s += f", update_nonlinearity={self.update_nonlinearity!r}"
        return s


class UGRNN(_LowRank):
    """UGRNN (EdgeML UGRNNLRCell), gate order z, c: z = f(W_z x + b_iz + U_z h + b_hz);
    c = g(W_c x + b_ic + U_c h + b_hc); h' = z h + (1 - z) c.

    f, g: `activations` (default ("sigmoid", "tanh")), each one of tanh, sigmoid, relu,
    softsign, hard_tanh or hard_sigmoid (`activation_alpha`, `activation_beta`: per role,
    hard_sigmoid's alpha and beta, None for the default or another function). Parameters:
    `weight_ih` [2H, I] or `weight_ih_a` [w_rank, I] + `weight_ih_b` [2H, w_rank];
    `weight_hh` [2H, H] or `weight_hh_a` [u_rank, H] + `weight_hh_b` [2H, u_rank];
    `bias_ih`, `bias_hh` [2H] (if bias) -- fastseq.UGRNN's state_dict."""

    _gates = 2

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 bidirectional=False, w_rank=None, u_rank=None, activations=None,
                 activation_alpha=None, activation_beta=None):
        names = ("sigmoid", "tanh") if activations is None else tuple(activations)
        alphas = (None, None) if activation_alpha is None else tuple(activation_alpha)
        betas = (None, None) if activation_beta is None else tuple(activation_beta)
        for what, values in (("activations", names), ("activation_alpha", alphas), ("activation_beta", betas)):
            if len(values) != 2:
                raise ValueError(f"{what}: expected 2 values (z, c), got {len(values)}: {values!r}")
        self._f, self._g = (_nonlinearity(n, f"activations[{r}]", a, b)
                            for r, (n, a, b) in enumerate(zip(names, alphas, betas)))
        self.activations, self.activation_alpha, self.activation_beta = names, alphas, betas
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, bidirectional,
                         w_rank, u_rank)

    def _add_params(self, suffix, in_size):
        self._add_weights(suffix, in_size)
        if self.bias:
            self._param("bias_ih", suffix, 2 * self.hidden_size)
            self._param("bias_hh", suffix, 2 * self.hidden_size)

    def _input_proj(self, p, x):
        wx = self._apply(p, "weight_ih", x)
        return wx + p["bias_ih"] if self.bias else wx

    def _step(self, p, gx, state):
        h = state[0]
        pre = gx + self._apply(p, "weight_hh", h)
        if self.bias:
            pre = pre + p["bias_hh"]
        z, c = pre.chunk(2, -1)
        z = self._f(z)
        return (z * h + (1.0 - z) * self._g(c),)

    def extra_repr(self):
        s = super().extra_repr()
        return s + (f", activations={self.activations!r}" if self.activations != ("sigmoid", "tanh") else "")


class _Gated(_Recurrent):
    """torch-style gated cells: weight_ih [G*H, I], weight_hh [G*H, H], bias_ih, bias_hh [G*H]."""

    _gates = None

    def _add_params(self, suffix, in_size):
        GH = self._gates * self.hidden_size
        self._param("weight_ih", suffix, GH, in_size)
        self._param("weight_hh", suffix, GH, self.hidden_size)
        if self.bias:
            self._param("bias_ih", suffix, GH)
            self._param("bias_hh", suffix, GH)

    def _input_proj(self, p, x):
        gx = x @ p["weight_ih"].T
        return gx + p["bias_ih"] if self.bias else gx

    def _hidden_proj(self, p, h):
        gh = h @ p["weight_hh"].T
        return gh + p["bias_hh"] if self.bias else gh


class PeepholeLSTM(_Gated):
    """LSTM with peepholes: nn.LSTM's parameters (gate order i, f, g, o) plus `peephole_i`,
    `peephole_f`, `peephole_o` [H]: i = sigmoid(... + p_i c), f = sigmoid(... + p_f c),
    o = sigmoid(... + p_o c') -- the output gate looks at the new cell state."""

    _gates, _n_states = 4, 2

    def _add_params(self, suffix, in_size):
        super()._add_params(suffix, in_size)
        for g in "ifo":
            self._param("peephole_" + g, suffix, self.hidden_size)

    def _step(self, p, gx, state):
        h, c = state
        i, f, g, o = (gx + self._hidden_proj(p, h)).chunk(4, -1)
        i = torch.sigmoid(i + p["peephole_i"] * c)
        f = torch.sigmoid(f + p["peephole_f"] * c)
        c = f * c + i * torch.tanh(g)
        o = torch.sigmoid(o + p["peephole_o"] * c)
        return o * torch.tanh(c), c


class CoupledLSTM(_Gated):
    """Coupled input-forget gate LSTM (CIFG, ONNX input_forget=1): f = 1 - i. Gate order
    (i, g, o): weight_ih [3H, I], weight_hh [3H, H], bias_ih, bias_hh [3H]."""

    _gates, _n_states = 3, 2

    def _step(self, p, gx, state):
        h, c = state
        i, g, o = (gx + self._hidden_proj(p, h)).chunk(3, -1)
        i = torch.sigmoid(i)
        c = (1.0 - i) * c + i * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c


class ResetBeforeGRU(_Gated):
    """GRU with the reset gate applied before the recurrent product (Cho et al.; ONNX
    linear_before_reset=0; Keras reset_after=False): nn.GRU's parameters and gate order
    (r, z, n), n = tanh(W_in x + b_in + W_hn (r h) + b_hn); h' = (1 - z) n + z h."""

    _gates = 3

    def _step(self, p, gx, state):
        h, H = state[0], self.hidden_size
        w_hh = p["weight_hh"]
        rz = gx[..., :2 * H] + h @ w_hh[:2 * H].T
        if self.bias:
            rz = rz + p["bias_hh"][:2 * H]
        r, z = torch.sigmoid(rz).chunk(2, -1)
        hn = (r * h) @ w_hh[2 * H:].T
        if self.bias:
            hn = hn + p["bias_hh"][2 * H:]
        n = torch.tanh(gx[..., 2 * H:] + hn)
        return ((1.0 - z) * n + z * h,)


# Tree networks (issue 15): their own file, re-exported here.
from ._torch_tree import ChildSumTreeLSTM, NaryTreeLSTM, RecursiveNN  # noqa: E402

__all__ += ["ChildSumTreeLSTM", "NaryTreeLSTM", "RecursiveNN"]


# ---- encoder-decoder (fastseq.Seq2Seq's reference) ----------------------------------------

__all__ += ["Seq2Seq"]


class Seq2Seq(nn.Module):
    """Reference encoder-decoder for :class:`fastseq.Seq2Seq`, trainable with autograd.

    `encoder` and `decoder` are torch sequence layers (nn.LSTM / GRU / RNN or a module of
    this file; the decoder unidirectional, both with the same num_layers); `head` an
    nn.Linear(F_dec, V); `embedding` an nn.Embedding(V, E) for tokens, or None for
    continuous outputs (the previous head output is the next input); `bridge` an
    nn.Linear(D * F_enc, F_dec) applied to each layer's final h (directions concatenated,
    forward first) and, between two LSTMs, to c; None copies the states.

    ``logits = m(x, dec_in, lengths)`` is teacher forcing (dec_in: the previous tokens,
    [T_out, B] or [B, T_out] following the decoder's batch_first; continuous: its inputs);
    ``m.greedy(x, lengths, max_len=..., bos=..., eos=...)`` a plain Python decode loop.
    """

    def __init__(self, encoder, decoder, head, embedding=None, bridge=None):
        super().__init__()
        self.encoder, self.decoder, self.head = encoder, decoder, head
        self.embedding, self.bridge = embedding, bridge

    def _encode_raw(self, x, lengths):
        if lengths is None:
            return self.encoder(x)[1]
        if isinstance(self.encoder, (nn.LSTM, nn.GRU, nn.RNN)):
            packed = nn.utils.rnn.pack_padded_sequence(x, torch.as_tensor(lengths).cpu(),
                                                       batch_first=self.encoder.batch_first, enforce_sorted=False)
            return self.encoder(packed)[1]
        return self.encoder(x, lengths=lengths)[1]

    def initial_states(self, x, lengths=None):
        """The decoder's initial state (h, or (h, c) for an LSTM decoder) from the encoder."""
        state = self._encode_raw(x, lengths)
        enc_h, enc_c = state if isinstance(state, tuple) else (state, None)
        L, D, B = self.encoder.num_layers, 2 if self.encoder.bidirectional else 1, enc_h.shape[1]

        def per_layer(s):
            s = s.reshape(L, D, B, -1).transpose(1, 2).reshape(L, B, -1)
            return s if self.bridge is None else self.bridge(s)

        h0 = per_layer(enc_h)
        if not isinstance(self.decoder, (nn.LSTM, PeepholeLSTM, CoupledLSTM)):
            return h0
        c0 = per_layer(enc_c) if enc_c is not None else h0.new_zeros(L, B, self.decoder.hidden_size)
        return h0, c0

    def _input(self, prev):
        return self.embedding(prev) if self.embedding is not None else prev

    def forward(self, x, dec_in, lengths=None):
        """Teacher forcing: logits [T_out, B, V] ([B, T_out, V] if the decoder is batch_first)."""
        out = self.decoder(self._input(dec_in), self.initial_states(x, lengths))[0]
        return self.head(out)

    @torch.no_grad()
    def greedy(self, x, lengths=None, *, max_len, bos=0, eos=None):
        """A torch greedy loop: a list of int64 token tensors (eos excluded), one per sequence."""
        state = self.initial_states(x, lengths)
        B = (state[0] if isinstance(state, tuple) else state).shape[1]
        prev = torch.full((B,), bos, dtype=torch.long)
        steps, done = [], torch.zeros(B, dtype=torch.bool)
        for _ in range(max_len):
            inp = self._input(prev).unsqueeze(1 if self.decoder.batch_first else 0)
            out, state = self.decoder(inp, state)
            prev = self.head(out.squeeze(1 if self.decoder.batch_first else 0)).argmax(-1)
            steps.append(prev)
            done = done | (prev == eos) if eos is not None else done
            if bool(done.all()):
                break
        toks = torch.stack(steps, 1)
        result = []
        for row in toks:
            stop = (row == eos).nonzero() if eos is not None else row.new_zeros(0)
            result.append(row[:int(stop[0])] if len(stop) else row)
        return result


class ResidualStack(nn.Module):
    """One-layer recurrent modules run in turn, every one after the first adding its input
    to its output (GNMT-style residual connections): the torch form of a fastseq layer
    with ``residual=True``.

    `layers`: nn.LSTM, nn.GRU, nn.RNN or a module of this file, each with
    ``num_layers=1``, all of one class, direction count and batch_first. Called like
    them: ``output, h_n = stack(x, hx=None, lengths=None)`` (``(h_n, c_n)`` for an LSTM),
    states stacked layer by layer as in a multi-layer module."""

    def __init__(self, layers):
        super().__init__()
        layers = list(layers)
        if len(layers) < 2:
            raise ValueError(f"layers: expected at least 2 (the first adds nothing), got {len(layers)}")
        first = layers[0]
        for k, m in enumerate(layers):
            if m.num_layers != 1 or type(m) is not type(first) or m.batch_first != first.batch_first \
                    or m.bidirectional != first.bidirectional:
                raise ValueError(f"layers[{k}]: expected a one-layer {type(first).__name__} like "
                                 f"layers[0], got {m}")
        self.layers = nn.ModuleList(layers)

    def forward(self, x, hx=None, lengths=None):
        first = self.layers[0]
        lstm = isinstance(first, (nn.LSTM, PeepholeLSTM, CoupledLSTM))
        D = 2 if first.bidirectional else 1
        T = x.shape[1 if first.batch_first and x.dim() == 3 else 0]
        states = []
        for k, layer in enumerate(self.layers):
            h = None
            if hx is not None:
                h = tuple(s[k * D:(k + 1) * D] for s in hx) if lstm else hx[k * D:(k + 1) * D]
            if lengths is None:
                y, state = layer(x, h)
            elif isinstance(layer, nn.RNNBase):
                packed = nn.utils.rnn.pack_padded_sequence(x, torch.as_tensor(lengths), first.batch_first,
                                                           enforce_sorted=False)
                y, state = layer(packed, h)
                y = nn.utils.rnn.pad_packed_sequence(y, first.batch_first, total_length=T)[0]
            else:
                y, state = layer(x, h, lengths=lengths)
            x = y + x if k else y
            states.append(state if lstm else (state,))
        final = tuple(torch.cat([s[i] for s in states]) for i in range(len(states[0])))
        return x, (final if lstm else final[0])
