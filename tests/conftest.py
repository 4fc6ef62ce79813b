"""Shared test helpers: ISA parametrisation, import hygiene, and under CI=true no skip
for a missing requirement (every test file's `pytest.importorskip` becomes a failure).

Tests run against the *installed* fastseq (``pip install .``). Run from the
repository root, ``python -m pytest`` puts the root on ``sys.path``, where the
source folder ``fastseq/`` (no compiled ``_core``) would shadow the installed
package; this file drops that entry first, unless the source tree holds an
in-place build.
"""

import contextlib
import os
import sys
from pathlib import Path

import pytest

from _requires import in_ci, is_missing_import_skip

ROOT = Path(__file__).resolve().parent.parent


def _drop_source_tree_from_path():
    if "fastseq" in sys.modules:
        return
    src_pkg = ROOT / "fastseq"
    if any(src_pkg.glob("_core*.so")) or any(src_pkg.glob("_core*.pyd")):
        return  # an in-place build: the source tree is importable as it is

    def is_root(entry):
        try:
            return Path(entry or os.getcwd()).resolve() == ROOT
        except OSError:
            return False

    sys.path[:] = [p for p in sys.path if not is_root(p)]


_drop_source_tree_from_path()

try:
    import fastseq  # noqa: E402
except ImportError as exc:  # pragma: no cover - environment problem
    raise ImportError(
        "fastseq is not importable; install it first (pip install .) -- "
        f"the source tree alone has no compiled _core: {exc}"
    ) from exc


ISAS = list(fastseq.available_isas())


@contextlib.contextmanager
def using_isa(name):
    """Force kernel level `name` inside the block; restore the previous one after."""
    previous = fastseq.isa()
    fastseq.set_isa(name)
    try:
        yield name
    finally:
        fastseq.set_isa(previous)


def pytest_generate_tests(metafunc):
    # Any test that takes an `isa` argument runs once per available ISA.
    if "isa" in metafunc.fixturenames:
        metafunc.parametrize("isa", ISAS, indirect=True)


@pytest.fixture
def isa(request):
    """The active ISA name for this test (set on entry, restored on exit)."""
    with using_isa(request.param):
        yield request.param


@pytest.fixture
def each_isa():
    """For tests that loop over ISAs themselves (to reuse expensive references):
    ``for name in each_isa(): ...`` runs the body with each ISA active in turn."""

    def gen():
        for name in ISAS:
            with using_isa(name):
                yield name

    return gen


def _fail_in_ci(report):
    if in_ci() and is_missing_import_skip(report):
        report.outcome = "failed"
        report.longrepr = (f"CI=true: a required package is missing, and a skip would hide the "
                           f"tests CI must run: {report.longrepr}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _fail_in_ci(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _fail_in_ci(outcome.get_result())
