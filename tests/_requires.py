"""What the tests need beyond numpy (torch, the importers' frameworks, cmake and a C
compiler): a skip on a developer's machine without it, a failure under CI=true (where
.ci/run installs everything), so CI can never go green by skipping."""
import importlib
import os
import sys
import types

import pytest


def in_ci():
    return os.environ.get("CI") == "true"


def missing(hint):
    """Skip the calling test or module with `hint`, or fail it under CI=true."""
    if in_ci():
        pytest.fail(f"CI=true: {hint}", pytrace=False)
    pytest.skip(hint, allow_module_level=True)


def require(module, pip_name=None):
    """Import `module`, or skip (fail under CI=true) saying what to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        missing(f"{module} is not installed (pip install {pip_name or module}): {exc}")


def is_missing_import_skip(report):
    """True for the skip pytest.importorskip reports ("could not import ..."): under
    CI=true conftest turns it into a failure, in every test file."""
    if not report.skipped:
        return False
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return "could not import" in reason


def edgeml_rnn():
    """edgeml_pytorch.graph.rnn (edgeml-pytorch 0.3.0). That module imports the CUDA
    extension `fastgrnn_cuda` whenever it finds nvcc; no test here runs on a GPU, so an
    empty stand-in satisfies the import."""
    sys.modules.setdefault("fastgrnn_cuda", types.ModuleType("fastgrnn_cuda"))
    return require("edgeml_pytorch.graph.rnn", "--no-deps edgeml-pytorch==0.3.0")
