"""torch at its best for the benchmark's torch peer, where torch has no native module.

FastRNN and FastGRNN (EdgeML's cells) have no torch.nn module; fastseq.torch's reference
modules are written for clarity (a Python loop, a dict of parameters per step). These are
the fastest formulation found for torch: weights transposed once, the input projection
hoisted out of the loop as one GEMM over all T*B rows, the loop in TorchScript, each step
one `addmm` into the hoisted row plus the elementwise update, and the scalar sigmoids
(alpha, beta, zeta, nu) taken once. `step` is the same update for streaming.

`pick_fastest` times candidate formulations of one computation and keeps the fastest, so
the peer is torch's best here, not a guess (e.g. eager vs scripted nn.LSTMCell).
"""
import time

import torch


class FastRNNScripted(torch.nn.Module):
    """h~ = tanh(W x + b + U h); h' = sigmoid(alpha) h~ + sigmoid(beta) h (full rank, tanh)."""

    def __init__(self, sd):
        super().__init__()
        self.wt = sd["weight_ih_l0"].detach().t().contiguous()      # [I, H]
        self.ut = sd["weight_hh_l0"].detach().t().contiguous()      # [H, H]
        self.b = sd["bias_l0"].detach().clone()
        self.alpha = torch.sigmoid(sd["alpha_l0"].detach()).reshape(())
        self.beta = torch.sigmoid(sd["beta_l0"].detach()).reshape(())

    def forward(self, x: torch.Tensor, h: torch.Tensor):
        T, B = x.shape[0], x.shape[1]
        gx = torch.addmm(self.b, x.reshape(T * B, x.shape[2]), self.wt).view(T, B, -1)
        ys = []
        for t in range(T):
            h = self.alpha * torch.tanh(torch.addmm(gx[t], h, self.ut)) + self.beta * h
            ys.append(h)
        return torch.stack(ys), h

    @torch.jit.export
    def step(self, x: torch.Tensor, h: torch.Tensor):
        pre = torch.addmm(torch.addmm(self.b, x, self.wt), h, self.ut)
        return self.alpha * torch.tanh(pre) + self.beta * h


class FastGRNNScripted(torch.nn.Module):
    """pre = W x + U h; z = sigmoid(pre + b_g); h~ = tanh(pre + b_u);
    h' = z h + (sigmoid(zeta) (1 - z) + sigmoid(nu)) h~ (full rank, default nonlinearities)."""

    def __init__(self, sd):
        super().__init__()
        self.wt = sd["weight_ih_l0"].detach().t().contiguous()
        self.ut = sd["weight_hh_l0"].detach().t().contiguous()
        self.bg = sd["bias_gate_l0"].detach().clone()
        self.bu = sd["bias_update_l0"].detach().clone()
        self.zeta = torch.sigmoid(sd["zeta_l0"].detach()).reshape(())
        self.nu = torch.sigmoid(sd["nu_l0"].detach()).reshape(())

    def _update(self, pre: torch.Tensor, h: torch.Tensor):
        z = torch.sigmoid(pre + self.bg)
        return z * h + (self.zeta * (1.0 - z) + self.nu) * torch.tanh(pre + self.bu)

    def forward(self, x: torch.Tensor, h: torch.Tensor):
        T, B = x.shape[0], x.shape[1]
        gx = torch.mm(x.reshape(T * B, x.shape[2]), self.wt).view(T, B, -1)
        ys = []
        for t in range(T):
            h = self._update(torch.addmm(gx[t], h, self.ut), h)
            ys.append(h)
        return torch.stack(ys), h

    @torch.jit.export
    def step(self, x: torch.Tensor, h: torch.Tensor):
        return self._update(torch.addmm(torch.mm(x, self.wt), h, self.ut), h)


SCRIPTED = {"FastRNN": FastRNNScripted, "FastGRNN": FastGRNNScripted}


def scripted_edgeml(cell, module):
    """The scripted fast formulation of a fastseq.torch FastRNN/FastGRNN module, or None
    where it does not apply (low rank, other nonlinearities, no bias, several layers)."""
    plain = (getattr(module, "w_rank", None) is None and getattr(module, "u_rank", None) is None
             and module.bias and module.num_layers == 1 and not module.bidirectional
             and getattr(module, "nonlinearity", "tanh") == "tanh"
             and getattr(module, "gate_nonlinearity", "sigmoid") == "sigmoid"
             and getattr(module, "update_nonlinearity", "tanh") == "tanh")
    return torch.jit.script(SCRIPTED[cell](module.state_dict())) if plain else None


def pick_fastest(candidates, reps=5):
    """{name: zero-argument callable} -> the name whose best of `reps` calls is fastest,
    and the timings (s) it was picked on."""
    best = {}
    with torch.inference_mode():
        for name, fn in candidates.items():
            fn()                                   # warm-up (TorchScript profiles twice)
            fn()
            times = []
            for _ in range(reps):
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
            best[name] = min(times)
    return min(best, key=best.get), best
