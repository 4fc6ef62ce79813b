"""Optional third-party packages of the importer tests: a skip on a developer's machine
without them, a failure under CI=true (where .ci/run installs them)."""
import importlib
import os
import sys
import types

import pytest


def require(module, pip_name=None):
    """Import `module`, or skip (fail under CI=true) saying what to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        hint = f"{module} is not installed (pip install {pip_name or module}): {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(hint)
        pytest.skip(hint, allow_module_level=True)


def edgeml_rnn():
    """edgeml_pytorch.graph.rnn (edgeml-pytorch 0.3.0). That module imports the CUDA
    extension `fastgrnn_cuda` whenever it finds nvcc; no test here runs on a GPU, so an
    empty stand-in satisfies the import."""
    sys.modules.setdefault("fastgrnn_cuda", types.ModuleType("fastgrnn_cuda"))
    return require("edgeml_pytorch.graph.rnn", "--no-deps edgeml-pytorch==0.3.0")
