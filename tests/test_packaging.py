"""Packaging: the sdist holds the tracked files and nothing else; the installed wheel
carries the C library (fastseq.get_include(), get_library_dir()); `cmake --install`
gives a CMake package and a pkg-config file that a C project can build against.

Each C consumer is tests/packaging/consumer.c: it runs one forward pass and checks it
against the recurrence computed with libm."""
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

import fastseq
from _cbuild import ROOT, build, c_compiler, env, have_toolchain, run
from _requires import missing, require

CONSUMER = ROOT / "tests" / "packaging"
# what a checkout has that is not a project file: planted before building the sdist
UNTRACKED = ["notes.txt", "scratch/data.bin", "build-debug/CMakeCache.txt", ".venv-local/pyvenv.cfg"]
IGNORED = ["fastseq/_core.c", "fastseq/_core.cpython-311-x86_64-linux-gnu.so", "src/status.o",
           "fastseq/__pycache__/io.cpython-311.pyc", "build/cp311-cp311-linux_x86_64/CMakeCache.txt"]


def tracked_files():
    """The repository's tracked files that exist in the working tree (git ls-files)."""
    if shutil.which("git") is None:
        missing("git not found: the sdist test compares the archive with `git ls-files`")
    proc = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        missing(f"{ROOT} is not a git checkout (git ls-files: {proc.stderr.strip()})")
    return {name for name in proc.stdout.split("\0") if name and (ROOT / name).is_file()}


def test_sdist_holds_tracked_files_only(tmp_path):
    require("scikit_build_core", "scikit-build-core")
    tracked = tracked_files()
    tree = tmp_path / "tree"
    for name in tracked:
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, tree / name)
    for name in UNTRACKED + IGNORED:
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_text("not part of the project\n")
    out = tmp_path / "dist"
    script = "import sys; from scikit_build_core.build import build_sdist; print(build_sdist(sys.argv[1]))"
    proc = run([sys.executable, "-c", script, out], cwd=tree)
    archive = out / proc.stdout.strip().splitlines()[-1]
    with tarfile.open(archive) as sdist:
        top = f"fastseq-{fastseq.__version__}/"
        members = {m.name[len(top):] for m in sdist.getmembers() if m.isfile()}
    extra, lost = members - tracked - {"PKG-INFO"}, tracked - members
    assert not extra, f"the sdist packs files git does not track: {sorted(extra)}"
    assert not lost, (f"tracked files missing from the sdist: {sorted(lost)} (a new top-level "
                      f"entry must be listed in pyproject.toml, [tool.scikit-build.sdist] exclude)")


def pc_libs(pc_file):
    """The link flags a .pc file lists besides -L (static library: -lfastseq, OpenMP, -lm)."""
    for line in Path(pc_file).read_text().splitlines():
        if line.startswith("Libs:"):
            return [flag for flag in shlex.split(line[len("Libs:"):]) if not flag.startswith("-L")]
    raise AssertionError(f"{pc_file} has no Libs: line")


def run_consumer(program):
    proc = run([program], env=env())
    assert proc.stdout.strip() == "ok", proc.stdout + proc.stderr


def test_wheel_ships_header_and_library(tmp_path):
    package = Path(fastseq.__file__).resolve().parent
    include, libdir = Path(fastseq.get_include()), Path(fastseq.get_library_dir())
    assert package != ROOT / "fastseq", "the tests must run against the installed package"
    assert include == package / "include" and (include / "fastseq.h").is_file()
    assert libdir == package / "lib" and (libdir / "libfastseq.a").is_file()
    assert (libdir / "cmake" / "fastseq" / "fastseqConfig.cmake").is_file()
    assert (include / "fastseq.h").read_bytes() == (ROOT / "src/include/fastseq.h").read_bytes()
    if not have_toolchain():
        pytest.skip("cmake or a C compiler is missing")
    program = tmp_path / "consumer"
    run([*shlex.split(c_compiler()), CONSUMER / "consumer.c", f"-I{include}", f"-L{libdir}",
         *pc_libs(libdir / "pkgconfig" / "fastseq.pc"), "-o", program])
    run_consumer(program)


def test_paths_say_when_the_package_is_not_installed(tmp_path, monkeypatch):
    monkeypatch.setattr(fastseq._paths, "_PACKAGE_DIR", tmp_path)
    with pytest.raises(FileNotFoundError, match="fastseq.h not found in .*pip install"):
        fastseq.get_include()
    with pytest.raises(FileNotFoundError, match="libfastseq.a not found in"):
        fastseq.get_library_dir()


@pytest.fixture(scope="module")
def installed_prefix(tmp_path_factory):
    """`cmake --install` of the session's C build, then moved: the installed tree must not
    depend on where it was installed (pip and package managers move it)."""
    if not have_toolchain():
        pytest.skip("cmake or a C compiler is missing")
    staged = tmp_path_factory.mktemp("install") / "staged"
    run(["cmake", "--install", build().path, "--prefix", staged])
    moved = staged.with_name("moved")
    staged.rename(moved)
    return moved


def test_cmake_install_tree(installed_prefix):
    config = list(installed_prefix.glob("lib*/cmake/fastseq/fastseqConfig.cmake"))
    assert len(config) == 1, f"expected one lib*/cmake/fastseq/fastseqConfig.cmake, got {config}"
    libdir = config[0].parent.parent.parent
    for path in (installed_prefix / "include/fastseq.h", libdir / "libfastseq.a",
                 libdir / "cmake/fastseq/fastseqTargets.cmake",
                 libdir / "cmake/fastseq/fastseqConfigVersion.cmake", libdir / "pkgconfig/fastseq.pc"):
        assert path.is_file(), f"cmake --install did not install {path}"


def test_find_package_consumer(installed_prefix, tmp_path):
    flags = " ".join(build().flags)  # the session's library is built with the sanitizers
    out = tmp_path / "build"
    run(["cmake", "-S", CONSUMER, "-B", out, f"-DCMAKE_PREFIX_PATH={installed_prefix}",
         f"-DCMAKE_C_COMPILER={build().cc}", f"-DCMAKE_C_FLAGS={flags}",
         f"-DCMAKE_EXE_LINKER_FLAGS={flags}"])
    run(["cmake", "--build", out])
    run_consumer(out / "consumer")


def test_pkg_config_consumer(installed_prefix, tmp_path):
    if shutil.which("pkg-config") is None:
        missing("pkg-config not found (apt-get install pkg-config)")
    pc_dirs = [str(p.parent) for p in installed_prefix.glob("lib*/pkgconfig/fastseq.pc")]
    proc = run(["pkg-config", "--cflags", "--libs", "fastseq"],
               env=env(PKG_CONFIG_PATH=os.pathsep.join(pc_dirs)))
    program = tmp_path / "consumer"
    run([*shlex.split(build().cc), *build().flags, CONSUMER / "consumer.c",
         *shlex.split(proc.stdout), "-o", program])
    run_consumer(program)
