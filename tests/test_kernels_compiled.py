"""Every Triton kernel compiled ahead of time for the GPUs the benchmark runs on, without a GPU.

The interpreter tests (tests/test_kernels_*.py) check what the kernels compute; they never run
Triton's GPU compiler, so a kernel could pass them and still fail to compile, or need more shared
memory per block than a GPU has, at its first launch on a real machine. Here each kernel variant
goes through ``triton.compile`` (TTIR, TTGIR, LLVM IR, PTX, then a cubin from the ptxas in the
triton wheel) for sm_80 (A100), sm_89 (L40S, RTX 4090) and sm_90 (H100, H200), and its shared
memory is checked against that architecture's per-block limit.

The variants come from the tables the dispatch itself launches from (``specialisations()`` of
quant/kernels/{weight_matmul,kv_pack,decode_attention}.py; ``Specialisation.launch`` refuses a
variant missing from its table), so a new launch path cannot skip this test. The tables hold
4,440 variants, about a second of compiling each per architecture, so the suite compiles a
covering subset: for each kernel, variants chosen greedily until every pair of choices (two
pointer types, constexpr values or options, e.g. BLOCK_G=16 with BLOCK_D=64, or bf16 parameters
with 3 bits) occurs in one compiled variant, on every architecture. The weight matmul's tile
configs count as one choice each (see ``JOINT_CHOICES``), so each is compiled with every dtype.
``LVLMBENCH_COMPILE_ALL=1`` compiles every variant instead (after a change to a kernel's body;
CPU hours).

Compiling happens in a subprocess: under pytest without a GPU, tests/conftest.py turns on
Triton's interpreter, whose kernels cannot be compiled. The subprocess writes Triton's cache
under pytest's tmp_path only. Pointers are compiled as 16-byte aligned, as torch allocates them.
"""

from __future__ import annotations

import importlib
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

triton = pytest.importorskip("triton")

from quant.kernels.triton_common import Specialisation  # noqa: E402

pytestmark = pytest.mark.triton

REPO = Path(__file__).resolve().parents[1]
KERNEL_MODULES = ("quant.kernels.weight_matmul", "quant.kernels.kv_pack", "quant.kernels.decode_attention")

# Maximum shared memory per thread block (opt-in, bytes), CUDA C++ Programming Guide, "Technical
# Specifications per Compute Capability" (table "Maximum amount of shared memory per thread block"):
# compute capability 8.0: 163 KB, 8.9: 99 KB, 9.0: 227 KB. A launch needing more fails with
# Triton's OutOfResources("shared memory").
SHARED_LIMIT_BYTES = {80: 163 * 1024, 89: 99 * 1024, 90: 227 * 1024}
ARCH_NAMES = {80: "sm_80 (A100)", 89: "sm_89 (L40S/RTX 4090)", 90: "sm_90 (H100/H200)"}
COMPILE_ALL = os.environ.get("LVLMBENCH_COMPILE_ALL", "0") not in ("", "0")
# Choices that also count together as one, per kernel: tl.dot stages the weight matmul's tiles in
# shared memory, whose size depends on the whole tile config (from tile_config) with the dtypes.
JOINT_CHOICES = {"_packed_linear_kernel": ("BLOCK_M", "BLOCK_N", "BLOCK_K", "GROUP_ALIGNED", "num_warps", "num_stages")}


def table(module_name: str) -> tuple[Specialisation, ...]:
    """The dispatch's table of a kernel module (weight_matmul's GPU one, not the interpreter's)."""
    return importlib.import_module(module_name).specialisations()


def choices(spec: Specialisation) -> frozenset[tuple[str, object]]:
    """A variant's compile-time choices: pointer types, constexpr values, options, and its
    ``JOINT_CHOICES`` together."""
    single = spec.pointers + spec.constexprs + spec.options
    joint = JOINT_CHOICES.get(spec.kernel.__name__)
    if joint is None:
        return frozenset(single)
    return frozenset(single + (("+".join(joint), tuple(dict(single)[name] for name in joint)),))


def pairwise_cover(specs: tuple[Specialisation, ...]) -> list[int]:
    """Indices into ``specs`` (one kernel's variants) such that every pair of choices that occurs
    together in some variant occurs together in a chosen one: greedy, the variant adding most
    uncovered pairs first (a single choice is the pair of it with itself)."""
    pairs = [frozenset(itertools.combinations_with_replacement(sorted(choices(s), key=repr), 2)) for s in specs]
    uncovered = set().union(*pairs)
    chosen = []
    while uncovered:
        best = max(range(len(specs)), key=lambda i: len(pairs[i] & uncovered))
        chosen.append(best)
        uncovered -= pairs[best]
    return sorted(chosen)


def selected(module_name: str) -> list[int]:
    """Indices of the module's table this run compiles: all, or a pairwise cover per kernel."""
    specs = table(module_name)
    if COMPILE_ALL:
        return list(range(len(specs)))
    by_kernel: dict[str, list[int]] = {}
    for i, spec in enumerate(specs):
        by_kernel.setdefault(spec.kernel.__name__, []).append(i)
    return sorted(idx[j] for idx in by_kernel.values() for j in pairwise_cover(tuple(specs[i] for i in idx)))


def compile_specialisations(module: ModuleType, indices: list[int], arch: int) -> list[dict[str, object]]:
    """Compile ``module.specialisations()[i]`` for each ``i`` for ``sm_<arch>``; per variant its name,
    shared memory (bytes) and cubin size. Runs in the subprocess (no interpreter)."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    target = GPUTarget("cuda", arch, 32)
    results = []
    for i in indices:
        spec = module.specialisations()[i]
        aligned = {(n,): [["tt.divisibility", 16]] for n, arg in enumerate(spec.kernel.arg_names)
                   if arg in dict(spec.pointers)}
        src = ASTSource(fn=spec.kernel, signature=spec.signature(), constexprs=dict(spec.constexprs), attrs=aligned)
        kernel = triton.compile(src, target=target, options=dict(spec.options))
        results.append({"index": i, "name": spec.name, "shared": kernel.metadata.shared,
                        "cubin_bytes": len(kernel.asm["cubin"])})
    return results


def run_compiler(module_name: str, indices: list[int], arch: int, cache: Path) -> list[dict[str, object]]:
    """:func:`compile_specialisations` in a fresh interpreter without TRITON_INTERPRET."""
    env = dict(os.environ, TRITON_INTERPRET="0", TRITON_CACHE_DIR=str(cache), PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, __file__, module_name, str(arch), json.dumps(indices)], cwd=REPO, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, f"compiling {module_name} for sm_{arch} failed:\n{proc.stderr[-6000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("module_name", KERNEL_MODULES, ids=lambda m: m.rsplit(".", 1)[1])
@pytest.mark.parametrize("arch", sorted(SHARED_LIMIT_BYTES), ids=lambda a: f"sm_{a}")
def test_compiles_within_shared_memory(arch, module_name, tmp_path, record_property):
    """Each selected variant compiles to a non-empty cubin for the architecture and needs no more
    shared memory per block than it has; the largest need is recorded (``shared_max``). One test
    (one compiler subprocess) per architecture and module: nine for pytest-xdist to spread."""
    indices = selected(module_name)
    results = run_compiler(module_name, indices, arch, tmp_path / "triton-cache")
    assert [r["index"] for r in results] == indices
    limit = SHARED_LIMIT_BYTES[arch]
    too_big = [f"{r['name']}: {r['shared']} bytes" for r in results if r["shared"] > limit]
    assert not too_big, f"{ARCH_NAMES[arch]} allows {limit} bytes of shared memory per block:\n" + "\n".join(too_big)
    empty = [r["name"] for r in results if not r["cubin_bytes"]]
    assert not empty, f"empty cubin for {ARCH_NAMES[arch]}: {empty}"
    widest = max(results, key=lambda r: r["shared"])
    record_property("compiled", len(results))
    record_property("shared_max", widest["shared"])
    record_property("shared_max_variant", widest["name"])


def test_cover_holds_every_choice_of_every_kernel():
    """The compiled subset leaves no pointer type, constexpr value or option of any table unused, and
    every jitted ``*_kernel`` of a kernel module has variants in its module's table."""
    for module_name in KERNEL_MODULES:
        specs = table(module_name)
        module = importlib.import_module(module_name)
        kernels = {name for name in vars(module) if name.endswith("_kernel")}
        assert kernels == {s.kernel.__name__ for s in specs}, module_name
        picked = set().union(*(choices(specs[i]) for i in selected(module_name)))
        assert picked == set().union(*(choices(s) for s in specs)), module_name


def test_launch_refuses_a_variant_missing_from_its_table():
    """A launch path whose variant the table lacks fails before running (so before it could reach a
    GPU uncompiled by this test)."""
    from quant.kernels import decode_attention

    spec = decode_attention.specialisations()[0]
    outside = Specialisation(spec.kernel, spec.pointers, spec.constexprs[:-1] + (("BLOCK_D", 512),), spec.options)
    with pytest.raises(RuntimeError, match="not in its module's specialisations"):
        outside.launch(decode_attention._table(), (1,))


if __name__ == "__main__":  # the subprocess of run_compiler: module name, architecture, JSON indices
    print(json.dumps(compile_specialisations(importlib.import_module(sys.argv[1]), json.loads(sys.argv[3]),
                                             int(sys.argv[2]))))
