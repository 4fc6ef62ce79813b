"""The gate activations of RNN, LSTM and GRU, by ONNX's roles (LSTM f: the gates
i, f, o; g: the cell input; h: the cell output. GRU f: the gates r, z; g: the
candidate. RNN f): the layers' arguments to fs_rnn_config fields and back."""
import math

import numpy as np

from . import _core

_PARAMETRISED = {"hard_sigmoid": (0.2, 0.5)}  # ONNX HardSigmoid's default alpha, beta


def _per_role(name, values, n):
    if values is None:
        return (None,) * n
    values = tuple(values)
    if len(values) != n:
        raise ValueError(f"{name}: expected {n} values (one per activation, None for the "
                         f"default), got {len(values)}")
    return values


def _parameter(what, name, value):
    """An activation parameter as the C config holds it (float32; 0.0: the default)."""
    if value is None:
        return 0.0
    if name not in _PARAMETRISED:
        raise ValueError(f"{what}: {name} takes no parameter, expected None, got {value!r}")
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value != 0):
        raise ValueError(f"{what}: expected a finite non-zero number, got {value!r}")
    return float(np.float32(value))


def to_config(usual, activations, activation_alpha, activation_beta, clip):
    """fs_rnn_config fields (act, act_alpha, act_beta, clip; keyword arguments of
    _core.Model) for the chosen activations; `usual`: the cell's own, one per role."""
    n = len(usual)
    names = tuple(usual) if activations is None else tuple(activations)
    if len(names) != n:
        raise ValueError(f"activations: expected {n} names ({', '.join(usual)} is the usual "
                         f"choice), got {len(names)}: {names!r}")
    alphas = _per_role("activation_alpha", activation_alpha, n)
    betas = _per_role("activation_beta", activation_beta, n)
    act, act_alpha, act_beta = [0, 0, 0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]
    for r, name in enumerate(names):
        if name not in _core.ROLE_ACTIVATIONS:
            raise ValueError(f"activations[{r}]: expected one of {sorted(_core.ROLE_ACTIVATIONS)}, "
                             f"got {name!r}")
        act_alpha[r] = _parameter(f"activation_alpha[{r}]", name, alphas[r])
        act_beta[r] = _parameter(f"activation_beta[{r}]", name, betas[r])
        if name != usual[r] or act_alpha[r] or act_beta[r]:
            act[r] = 1 + _core.ROLE_ACTIVATIONS[name]
    if clip is not None and not (isinstance(clip, (int, float)) and math.isfinite(clip) and clip > 0):
        raise ValueError(f"clip: expected None or a finite number > 0, got {clip!r}")
    return {"act": tuple(act), "act_alpha": tuple(act_alpha), "act_beta": tuple(act_beta),
            "clip": float(np.float32(clip or 0.0))}


def fast_to_config(roles):
    """fs_rnn_config fields act_alpha, act_beta of FastRNN / FastGRNN: `roles` maps a role
    (0: the gate, 1: the update) to (argument name, activation name, alpha, beta); alpha
    and beta are None (the default, 0.2 and 0.5 for hard_sigmoid) or hard_sigmoid's."""
    act_alpha, act_beta = [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]
    for r, (arg, name, alpha, beta) in roles.items():
        act_alpha[r] = _parameter(f"{arg}_alpha", name, alpha)
        act_beta[r] = _parameter(f"{arg}_beta", name, beta)
    return {"act_alpha": tuple(act_alpha), "act_beta": tuple(act_beta)}


def fast_from_config(cfg, r, name):
    """(alpha, beta) of role r of a FastRNN / FastGRNN config dict whose activation is
    `name`: the defaults filled in for hard_sigmoid, else (None, None)."""
    default = _PARAMETRISED.get(name)
    if default is None:
        return None, None
    return float(cfg["act_alpha"][r] or default[0]), float(cfg["act_beta"][r] or default[1])


def from_config(cfg, usual):
    """(activations, activation_alpha, activation_beta, clip) of an fs_rnn_config dict,
    the defaults filled in (alpha, beta: None for a function without them)."""
    names = {v: k for k, v in _core.ROLE_ACTIVATIONS.items()}
    acts, alphas, betas = [], [], []
    for r, name in enumerate(usual):
        if cfg["act"][r]:
            name = names[cfg["act"][r] - 1]
        acts.append(name)
        default = _PARAMETRISED.get(name)
        alphas.append(None if default is None else float(cfg["act_alpha"][r] or default[0]))
        betas.append(None if default is None else float(cfg["act_beta"][r] or default[1]))
    return tuple(acts), tuple(alphas), tuple(betas), (float(cfg["clip"]) or None)


def file_entries(cfg):
    """The .fsq config entries of the activation fields (act_f, act_alpha_g, clip, ...):
    only those that differ from zero, so a file of the usual cell stays as it was."""
    names = {v: k for k, v in _core.ROLE_ACTIVATIONS.items()}
    out = {}
    for r, role in enumerate("fgh"):
        if cfg["act"][r]:
            out[f"act_{role}"] = names[cfg["act"][r] - 1]
        for field in ("act_alpha", "act_beta"):
            if cfg[field][r]:
                out[f"{field}_{role}"] = float(cfg[field][r])
    if cfg["clip"]:
        out["clip"] = float(cfg["clip"])
    return out
