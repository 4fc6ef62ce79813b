"""Importers: translate other frameworks' weights and configs into fastseq layers."""
from .torch import from_torch

__all__ = ["from_torch"]
