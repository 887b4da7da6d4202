"""sdn.native: the compiled kernels give the same bits whatever the build, the threads and the
order of their parts; they refuse what they cannot take, also under ``python -O``; and the kernel
cache loads only what this user built."""
import csv
import os
import re
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from conftest import REPO, require_compiled_kernels
from sdn import native
from sdn.echo_density import echo_density_window

BINS = 8193  # four parts of the node system
SAMPLES = 16000  # seven parts of the echo density (1 s at 16 kHz)


def _kernel_outputs(generator: torch.Generator) -> list[torch.Tensor]:
    """Every output and gradient of both kernels, in both precisions, for random inputs."""
    outputs = []
    for dtype in (torch.float32, torch.float64):
        decay = torch.exp(-torch.arange(SAMPLES, dtype=torch.float64) / 3000).to(dtype)
        h = torch.randn(2, SAMPLES, dtype=dtype, generator=generator) * decay
        window = echo_density_window(16000, dtype=dtype)
        kappa = torch.linspace(1e2, 1e5, SAMPLES - window.shape[0], dtype=dtype)
        target = torch.rand(2, kappa.shape[0], dtype=dtype, generator=generator)
        outputs += native.soft_echo_density(h, kappa, window, target=target, scale=0.7)
        outputs += native.soft_echo_density(h, kappa, window, grad_sums=target)
    for dtype in (torch.complex64, torch.complex128):
        def c(*shape):
            return 0.3 * torch.randn(*shape, BINS, dtype=dtype, generator=generator)

        pair, walls, source, mic = c(15), c(6), c(6), c(6)
        junction, extraction = torch.rand(2, 6, 6, dtype=torch.float64, generator=generator)
        out = torch.empty(BINS, dtype=dtype)
        derivatives = tuple(torch.empty(*shape, BINS, dtype=dtype) for shape in ((15,), (6,), (6,), (6,), (6, 6)))
        native.node_system(pair, walls, source, mic, junction, extraction, out, derivatives)
        gradients = tuple(torch.empty_like(d) for d in derivatives[:4])
        weights = native.node_system_backward(c(), mic, derivatives, gradients)
        outputs += [out, *derivatives, *gradients, weights]
    return outputs


def _in_reverse(run, parts):
    """One thread, the parts in reverse order: what a scheduler may do."""
    for index in reversed(range(len(parts))):
        run(*parts[index], index)


def _cpu_flags() -> set:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    line = next((line for line in text.splitlines() if line.startswith("flags")), "")
    return set(line.split(":", 1)[-1].split())


def _builds() -> list[str]:
    """The builds this machine can run: native and generic everywhere, x86-64-v3 where the CPU has
    AVX2 and FMA (its vectors are half AVX-512's and twice SSE2's)."""
    return ["native", "generic"] + (["x86-64-v3"] if {"avx2", "fma"} <= _cpu_flags() else [])


def _child_env(**variables) -> dict:
    env = {**os.environ, "SDN_NATIVE": "1", "OMP_NUM_THREADS": "1", **variables}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), str(REPO / "tests"), env.get("PYTHONPATH")]))
    return env


def test_parts_cover_the_work_once_in_sizes_fixed_by_the_work_alone():
    for count in (0, 1, native.PART_SIZE - 1, native.PART_SIZE, 2 * native.PART_SIZE + 5, 15679):
        parts = native._parts(count)
        sizes = [last - first for first, last in parts]
        assert [first for first, _ in parts] == [k * native.PART_SIZE for k in range(len(parts))]
        assert sum(sizes) == count and (parts[-1][1] if parts else 0) == count
        assert all(size == native.PART_SIZE for size in sizes[:-1])
        assert not sizes or 0 < sizes[-1] < 2 * native.PART_SIZE


@pytest.mark.parametrize("threads", [2, 3])
def test_results_do_not_depend_on_the_threads_or_the_order_of_the_parts(threads, monkeypatch, compiled_kernels):
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    alone = _kernel_outputs(torch.Generator().manual_seed(0))
    monkeypatch.setattr(torch, "get_num_threads", lambda: threads)  # how sdn.native shares out work
    shared = _kernel_outputs(torch.Generator().manual_seed(0))
    monkeypatch.setattr(native, "_in_threads", _in_reverse)
    reversed_order = _kernel_outputs(torch.Generator().manual_seed(0))
    for a, b, c in zip(alone, shared, reversed_order):
        assert torch.equal(a, b) and torch.equal(a, c)


@pytest.mark.slow
def test_every_build_gives_the_same_bits(tmp_path, compiled_kernels):
    """The widest build (AVX-512 where the CPU has it) against the compiler's baseline (SSE2 on
    x86-64) and, where possible, AVX2: every output and gradient of both kernels, bit for bit."""
    script = tmp_path / "outputs.py"
    script.write_text(textwrap.dedent("""
        import sys, torch
        from sdn import native
        from test_native import _kernel_outputs
        assert native.compute_path()["build"] == sys.argv[2]
        torch.save(_kernel_outputs(torch.Generator().manual_seed(0)), sys.argv[1])
    """))
    results = {}
    for build in _builds():
        path = tmp_path / f"{build}.pt"
        subprocess.run([sys.executable, str(script), str(path), build], check=True,
                       env=_child_env(SDN_NATIVE_BUILD=build))
        results[build] = torch.load(path)
    reference = results.pop("native")
    for build, outputs in results.items():
        assert len(outputs) == len(reference)
        for index, (a, b) in enumerate(zip(reference, outputs)):
            assert torch.equal(a, b), f"output {index} differs between the native and the {build} build"


def test_the_native_build_fuses_no_multiply_and_add_of_its_own(compiled_kernels):
    """Only the echo density's explicit fma (the same on every build) may be a fused instruction:
    the node system, whose arithmetic the compiler could contract where the CPU has FMA, has none."""
    objdump = shutil.which("objdump")
    if objdump is None:
        pytest.skip("objdump (binutils) is not installed: cannot read the library's instructions")
    listing = subprocess.run([objdump, "-d", "--no-show-raw-insn", str(native._build().path)], capture_output=True,
                             text=True, check=True).stdout
    functions = re.split(r"\n(?=[0-9a-f]+ <)", listing)
    fused = re.compile(r"\s(v?fn?m(add|sub)\w*|vfm(addsub|subadd)\w*|fmla|fmls|fn?madd|fn?msub)\s")
    node_system = [f for f in functions if re.match(r"[0-9a-f]+ <sdn_node_system", f)]
    assert node_system, "no node-system function found in the disassembly"
    assert not [f.splitlines()[0] for f in node_system if fused.search(f)]


def _fit_history(out: Path, **env) -> list[list[str]]:
    subprocess.run([sys.executable, "-m", "sdn.train", "--config", "config/experiments/correction_fir6.yaml",
                    "--room", "config/rooms/homula_s1_r2hom1.yaml", "--epochs", "30", "--out", str(out), "--quiet",
                    "--max-eval-seconds", "1"], check=True, cwd=REPO, env=_child_env(**env), capture_output=True)
    with open(out / "history.csv") as file:
        return [row[:-1] for row in csv.reader(file)]  # all but the last column, the epoch's seconds


@pytest.mark.slow
def test_a_30_epoch_fit_is_bit_identical_between_the_widest_and_the_narrowest_build(tmp_path, compiled_kernels):
    """The native build against the generic one, the latter with torch's and MKL's own code held to
    AVX2 as on a CPU without AVX-512 (where this one has it, the closest this machine comes to
    another CPU)."""
    native_history = _fit_history(tmp_path / "native", SDN_NATIVE_BUILD="native")
    assert native_history[0][-1] == "total" and len(native_history) == 31
    narrow = dict(SDN_NATIVE_BUILD="generic", MKL_ENABLE_INSTRUCTIONS="AVX2")
    if "avx2" in _cpu_flags():
        narrow["ATEN_CPU_CAPABILITY"] = "avx2"
    assert _fit_history(tmp_path / "generic", **narrow) == native_history


@pytest.mark.slow
def test_fuzz_of_every_function_that_reaches_a_kernel(compiled_kernels):
    """float16 to complex128, strided, 0-d and empty: a finite result or TypeError/ValueError, never
    a crash or out-of-bounds numbers; normally and under python -O, where asserts vanish."""
    for optimise in ([], ["-O"]):
        result = subprocess.run([sys.executable, *optimise, str(REPO / "tests" / "kernel_fuzz.py")],
                                capture_output=True, text=True, env=_child_env())
        assert result.returncode == 0, (optimise, result.stdout[-2000:], result.stderr[-2000:])
        assert re.search(r"cases: (\d+), failures: 0", result.stdout).group(1) == "192"


@pytest.mark.parametrize("call", ["node_system", "node_system_backward", "soft_echo_density"])
def test_mismatched_dtypes_raise_under_python_O(call, compiled_kernels):
    """The cases that read out of bounds behind an assert: complex64 inputs with a complex128 output,
    and float64 signals with float32 slopes."""
    code = {
        "node_system": "z = torch.zeros(6, 9, dtype=torch.complex64); native.node_system(torch.zeros(15, 9, "
                       "dtype=torch.complex64), z, z, z, torch.eye(6), torch.eye(6), torch.empty(9, "
                       "dtype=torch.complex128))",
        "node_system_backward": "z = lambda *s: torch.zeros(*s, 9, dtype=torch.complex64); native.node_system_backward("
                                "z(), z(6), (z(15), z(6), z(6), z(6), z(6, 6)), (z(15), z(6), z(6), "
                                "torch.zeros(6, 9, dtype=torch.complex128)))",
        "soft_echo_density": "native.soft_echo_density(torch.randn(1, 400, dtype=torch.float64), torch.ones(80), "
                             "torch.ones(320, dtype=torch.float64))",
    }[call]
    script = f"import torch\nfrom sdn import native\ntry:\n    {code}\nexcept TypeError as error:\n    print(error)\n"
    result = subprocess.run([sys.executable, "-O", "-c", script], capture_output=True, text=True, env=_child_env())
    assert result.returncode == 0, result.stderr[-2000:]
    assert "must be torch.complex" in result.stdout or "must be torch.float" in result.stdout


def test_kernels_refuse_what_they_cannot_take(compiled_kernels):
    h = torch.randn(1, 400, dtype=torch.float32)
    window = torch.ones(320, dtype=torch.float32)
    with pytest.raises(TypeError, match="h must be a 2-d float32 or float64"):
        native.soft_echo_density(h.bfloat16(), torch.ones(80).bfloat16(), window.bfloat16())
    with pytest.raises(ValueError, match="kappa must have shape"):
        native.soft_echo_density(h, torch.ones(79), window)
    with pytest.raises(ValueError, match="longer than the window"):
        native.soft_echo_density(h[:, :320], torch.ones(1), window)
    out = torch.empty(2, 9, dtype=torch.complex64)[:, 0]  # strided: the kernel would write elsewhere
    z = torch.zeros(6, 2, dtype=torch.complex64)
    with pytest.raises(ValueError, match="out is written by the kernel and must be contiguous"):
        native.node_system(torch.zeros(15, 2, dtype=torch.complex64), z, z, z, torch.eye(6), torch.eye(6), out)
    assert not native.available(h.half(), dtypes=native.REAL)
    assert not native.available(h, h.double(), dtypes=native.REAL)
    assert not native.available(h, dtypes=native.COMPLEX)


def test_compute_path_names_the_code_that_ran(monkeypatch, compiled_kernels):
    path = native.compute_path()
    assert path["kernels"] == "compiled" and path["build"] == native.build_kind()
    assert path["flags"].split() == native.FLAGS + native.BUILDS[path["build"]]
    assert "-ffp-contract=off" in path["flags"] and path["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    monkeypatch.setenv("SDN_NATIVE", "0")
    assert native.compute_path() == {**path, "kernels": "pytorch", "kernel_source": None, "build": None,
                                     "vector_isa": None, "compiler": None, "flags": None}


# ---------------------------------------------------------------------------------------- the cache

PLANTED = r"""
#include <stdio.h>
__attribute__((constructor)) static void planted(void) {
    FILE *marker = fopen("MARKER", "w");
    if (marker) { fputs("ran", marker); fclose(marker); }
}
"""


def _load_in_child(cache: Path, umask: int | None = None) -> subprocess.CompletedProcess:
    """A fresh process that builds or loads the kernels from ``cache`` and prints its compute path."""
    prefix = f"import os; os.umask(0o{umask:o}); " if umask is not None else ""
    code = prefix + "import torch; from sdn import native; print(native.compute_path()['kernels'])"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=_child_env(SDN_CACHE_DIR=str(cache)))


def _plant(library: Path, marker: Path) -> None:
    """Replace ``library`` by one whose constructor writes ``marker``, with a matching checksum."""
    source = library.with_name("planted.c")
    source.write_text(PLANTED.replace("MARKER", str(marker)))
    subprocess.run([os.environ.get("CC", "cc"), "-shared", "-fPIC", str(source), "-o", str(library)], check=True)
    source.unlink()
    import hashlib

    library.with_suffix(".sha256").write_text(hashlib.sha256(library.read_bytes()).hexdigest())


@pytest.fixture
def built_cache(tmp_path, compiled_kernels) -> tuple[Path, Path]:
    """A private cache directory holding a copy of this process's library and its checksum (what a
    build writes, without building again); returns (directory, library)."""
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    built = native._build().path
    for source in (built, built.with_suffix(".sha256")):
        shutil.copy2(source, cache / source.name)
    return cache, cache / built.name


def test_the_cache_is_created_private_whatever_the_umask(tmp_path, compiled_kernels):
    cache = tmp_path / "cache"
    result = _load_in_child(cache, umask=0)
    assert result.stdout.strip() == "compiled", result.stderr
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    assert all(not (stat.S_IMODE(path.stat().st_mode) & 0o022) for path in cache.iterdir())


@pytest.mark.parametrize("how", ["group-writable directory", "world-writable library", "foreign owner"])
def test_a_library_planted_in_the_cache_is_never_loaded(how, built_cache, tmp_path):
    cache, library = built_cache
    marker = tmp_path / "constructor-ran"
    _plant(library, marker)
    if how == "group-writable directory":
        cache.chmod(0o777 | stat.S_ISVTX)  # as /tmp
    elif how == "world-writable library":
        library.chmod(0o777)
    else:
        if os.getuid() != 0:
            pytest.skip("giving a file to another user needs root")
        os.chown(library, 65534, 65534)  # nobody
        os.chown(library.with_suffix(".sha256"), 65534, 65534)
    result = _load_in_child(cache)
    assert not marker.exists(), f"the planted library ran ({how})"
    assert result.stdout.strip() == "compiled", result.stderr  # built again, privately or in place
    warnings = [line for line in result.stderr.splitlines() if "RuntimeWarning" in line]
    reason = "belongs to user 65534" if how == "foreign owner" else "writable by group or others"
    assert len(warnings) == 1 and reason in warnings[0], result.stderr


@pytest.mark.parametrize("damage", ["empty", "missing symbols", "wrong checksum"])
def test_a_damaged_library_is_rebuilt_once(damage, built_cache, tmp_path):
    cache, library = built_cache
    if damage == "empty":
        library.write_bytes(b"")
        library.with_suffix(".sha256").write_text("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    elif damage == "missing symbols":
        _plant(library, tmp_path / "harmless-marker")  # a valid library of ours without the kernels
    else:
        library.write_bytes(library.read_bytes() + b"\0")
    result = _load_in_child(cache)
    assert result.stdout.strip() == "compiled", result.stderr
    assert "RuntimeWarning" not in result.stderr
    assert library.stat().st_size > 10000
    assert _load_in_child(cache).stdout.strip() == "compiled"


def test_without_a_compiler_the_pytorch_path_runs_with_one_warning(tmp_path, compiled_kernels):
    code = "import torch; from sdn import native; print(native.compute_path()['kernels'])"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=_child_env(CC="no-such-compiler", SDN_CACHE_DIR=str(tmp_path / "cache")))
    assert result.stdout.strip() == "pytorch"
    assert result.stderr.count("RuntimeWarning") == 1 and "no C compiler ('no-such-compiler')" in result.stderr


@pytest.mark.slow
def test_group_writable_cache_still_fits(built_cache):
    """The issue's case: a cache directory others can write is refused, and a fit still runs."""
    cache, _ = built_cache
    cache.chmod(0o775)
    out = cache.parent / "run"
    result = subprocess.run([sys.executable, "-m", "sdn.train", "--config", "config/experiments/prior_fir0.yaml",
                             "--room", "config/rooms/homula_s1_r2hom1.yaml", "--epochs", "2", "--out", str(out),
                             "--quiet", "--max-eval-seconds", "1"], capture_output=True, text=True, cwd=REPO,
                            env=_child_env(SDN_CACHE_DIR=str(cache)))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "writable by group or others" in result.stderr and (out / "metrics.json").is_file()


def test_kernel_tests_skip_without_a_compiler(monkeypatch):
    monkeypatch.setenv("CC", "no-such-compiler")
    with pytest.raises(pytest.skip.Exception, match="no C compiler"):
        require_compiled_kernels()
