"""tools/mutate.py's list check: the shipped list matches the code, and a list that has
drifted from it (text gone, text twice, no test named) is refused with a reason."""
import importlib.util
import sys
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parent.parent / "tools" / "mutate.py"
if not TOOL.exists():
    pytest.skip("tools/mutate.py is not in this tree", allow_module_level=True)
if sys.version_info < (3, 11):
    pytest.skip("tools/mutate.py reads its list with tomllib (Python >= 3.11)", allow_module_level=True)


def load_tool():
    spec = importlib.util.spec_from_file_location("mutate_tool", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_shipped_list_matches_the_code():
    mutations, problems = load_tool().load()
    assert problems == []
    assert len(mutations) >= 20


def test_a_drifted_list_is_refused_with_reasons(tmp_path):
    tool = load_tool()
    entries = [
        ("gone", "src/optim.c", "no such text anywhere", '["tests/test_train.py"]'),
        ("twice", "src/optim.c", "fs__clear_error();", '["tests/test_train.py"]'),
        ("untested", "src/optim.c", "if (coef < 1.0f)", "[]"),
    ]
    text = "".join(f'[[mutation]]\nname = "{n}"\nfile = "{f}"\noriginal = "{o}"\nreplacement = "x"\n'
                   f'why = "w"\npytest = {t}\n\n' for n, f, o, t in entries)
    (tmp_path / "list.toml").write_text(text)
    _, problems = tool.load(tmp_path / "list.toml")
    assert any(p.startswith("gone: original text found 0 times") for p in problems), problems
    assert any(p.startswith("twice: original text found") and "expected exactly once" in p for p in problems)
    assert any(p.startswith("untested: names no test") for p in problems), problems
    assert len(problems) == 3, problems
