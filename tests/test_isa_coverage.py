"""Every kernel level the CPU supports is built, available, and so tested: the ISA
parametrisation (conftest.py) runs over fastseq.available_isas(), which lists only what
the build carries; a build that dropped a level would shrink the test matrix silently."""
import fastseq
from _cpu import cpu_levels
from _requires import missing


def test_every_level_the_cpu_has_is_available():
    levels = cpu_levels()
    if levels is None:
        missing("cannot read this CPU's features (x86-64 Linux and aarch64 only)")
    lacking = [level for level in levels if level not in fastseq.available_isas()]
    assert not lacking, (f"this CPU supports {levels} but the installed fastseq offers "
                         f"{fastseq.available_isas()}: rebuild with a compiler that has "
                         f"{lacking} (their tests would otherwise never run)")

