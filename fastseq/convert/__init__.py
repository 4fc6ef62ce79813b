"""Importers: translate other frameworks' weights and configs into fastseq layers."""
from .checkpoint import from_checkpoint
from .edgeml import from_edgeml
from .keras import from_keras
from .onnx import from_onnx
from .torch import from_torch

__all__ = ["from_torch", "from_edgeml", "from_onnx", "from_keras", "from_checkpoint"]
