"""Trained weights back to PyTorch: `layer.to_torch()` builds the equivalent nn.Module
(nn.LSTM / nn.GRU / nn.RNN, or the fastseq.torch module for the cells torch lacks) and
loads the weights. torch is imported here only."""


def to_torch(layer):
    import torch
    from torch import nn

    cfg = layer.config()
    if cfg["residual"]:
        return _residual_to_torch(layer, cfg)
    base = {k: cfg[k] for k in ("input_size", "hidden_size", "num_layers", "bias",
                                "batch_first", "bidirectional")}
    name = type(layer).__name__
    if name in ("LSTM", "GRU") and (cfg.get("w_rank") or cfg.get("u_rank")):
        raise NotImplementedError(f"to_torch: no torch module for a low-rank {name} (w_rank, u_rank)")
    if name == "LSTM" and not cfg.get("peephole") and not cfg.get("coupled"):
        module = nn.LSTM(**base, proj_size=cfg.get("proj_size", 0))
    elif name == "GRU" and cfg.get("reset_after", True):
        module = nn.GRU(**base)
    elif name == "RNN":
        module = nn.RNN(**base, nonlinearity=cfg.get("nonlinearity", "tanh"))
    else:
        from .. import torch as fs_torch  # the reference modules for the other cells
        if name == "LSTM":
            if cfg.get("peephole") and cfg.get("coupled"):
                raise NotImplementedError("to_torch: no torch module for a peephole + coupled LSTM")
            cls = fs_torch.PeepholeLSTM if cfg.get("peephole") else fs_torch.CoupledLSTM
            if cfg.get("proj_size"):
                raise NotImplementedError(f"to_torch: {cls.__name__} has no proj_size")
            module = cls(**base)
        elif name == "GRU":
            module = fs_torch.ResetBeforeGRU(**base)
        elif hasattr(fs_torch, name):
            extra = {k: v for k, v in cfg.items() if k not in base and k != "residual"}
            module = getattr(fs_torch, name)(**base, **extra)
        else:
            raise NotImplementedError(f"to_torch: no torch equivalent known for {name}")
    state = {k: torch.from_numpy(v.copy()) for k, v in layer.state_dict().items()}
    module.load_state_dict(state, strict=True)
    return module


def _residual_to_torch(layer, cfg):
    """A residual stack as fastseq.torch.ResidualStack of one-layer torch modules."""
    from .. import torch as fs_torch

    inner = layer.num_directions * layer.output_features
    weights = layer.state_dict()
    modules = []
    for k in range(layer.num_layers):
        one = type(layer)(**{**cfg, "num_layers": 1, "residual": False,
                             "input_size": cfg["input_size"] if k == 0 else inner})
        suffix = f"_l{k}"
        one.load_state_dict({key.replace(suffix, "_l0"): v for key, v in weights.items()
                             if key.endswith(suffix) or key.endswith(suffix + "_reverse")})
        modules.append(to_torch(one))
    return fs_torch.ResidualStack(modules)
