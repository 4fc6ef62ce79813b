"""Where the installed package keeps the C library, for C and C++ programs built
against it (the numpy.get_include() pattern): the wheel carries fastseq.h and
libfastseq.a, plus the CMake package and pkg-config file that describe them."""
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def _installed(relative: str, marker: str) -> str:
    path = _PACKAGE_DIR / relative
    if not (path / marker).is_file():
        raise FileNotFoundError(
            f"{marker} not found in {path}: this fastseq is not an installed wheel "
            f"(importing the source tree?). Install it with `pip install .`, or use the "
            f"C library from the repository (src/include, cmake --install)")
    return str(path)


def get_include() -> str:
    """Directory holding ``fastseq.h``, the C library's public header.

    Returns
    -------
    str
        Absolute path inside the installed package: compile with ``-I`` this path.

    Raises
    ------
    FileNotFoundError
        When the header is not there (the package was imported from a source tree).
    """
    return _installed("include", "fastseq.h")


def get_library_dir() -> str:
    """Directory holding ``libfastseq.a``, the C library (static).

    Link with ``-L`` this path ``-lfastseq -lm`` and OpenMP (``-fopenmp``) when the
    library was built with it; ``pkgconfig/fastseq.pc`` here lists the exact flags and
    ``cmake/fastseq`` here is the CMake package (``find_package(fastseq)``).

    Returns
    -------
    str
        Absolute path inside the installed package.

    Raises
    ------
    FileNotFoundError
        When the library is not there (the package was imported from a source tree).
    """
    return _installed("lib", "libfastseq.a")
