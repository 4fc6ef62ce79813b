"""Importers: translate other frameworks' weights and configs into fastseq layers."""
from .edgeml import from_edgeml
from .torch import from_torch

__all__ = ["from_torch", "from_edgeml"]
