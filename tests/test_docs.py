"""The API reference (docs/api: Sphinx autodoc + numpydoc over the installed package)
builds without a warning, and the equations the README and fastseq.torch cite are here."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_api_reference_builds_without_warnings(tmp_path):
    pytest.importorskip("sphinx")
    pytest.importorskip("numpydoc")
    proc = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
                           str(ROOT / "docs" / "api"), str(tmp_path / "html")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    page = (tmp_path / "html" / "training.html").read_text(encoding="utf-8")
    assert "Parameters" in page and "Returns" in page and "tbptt" in page


def test_equations_live_in_the_repository():
    text = (ROOT / "docs" / "equations.md").read_text(encoding="utf-8")
    for cell in ("RNN:", "LSTM (torch gate order", "GRU, reset-before", "FastRNN", "FastGRNN"):
        assert cell in text
    assert "docs/equations.md" in (ROOT / "fastseq" / "torch.py").read_text(encoding="utf-8")
