"""What the compile report says about a kernel's speed: the scalar library calls left in its
loop (``numba_cpu.scalar_call``), and whether LLVM vectorized each inner loop (``fn.loops()``,
``fn.report(loops=True)``, read by ``codegen/loops.py``)."""

import numpy as np
import pytest

from compiled import CACHE_DIR  # noqa: F401  (sets GRAPHC_CACHE_DIR first)

import graphc as gc
from graphc.codegen.loops import Loop, describe, loops_in_ir


def _graph(build, dtype="float32", n=4096):
    g = gc.Graph("speed")
    x = g.input("x", (n,), dtype)
    g.output("y", build(x))
    return g


def test_the_report_names_scalar_library_calls():
    report = gc.compile(_graph(lambda x: gc.exp(x) + gc.log(x) + x ** x, "float64")).report()
    line = next(ln for ln in report.splitlines() if "scalar library calls" in ln)
    for op in ("exp", "log", "pow"):
        assert f"{op} (float64)" in line


def test_vectorizable_lowerings_are_not_named():
    """float32 exp/tanh/sigmoid have vectorizable lowerings; x**3 and x**-0.5 are arithmetic."""
    fn = gc.compile(_graph(lambda x: gc.exp(x) * gc.tanh(x) + gc.sigmoid(x) + x ** 3 + x ** -0.5))
    assert "scalar library calls" not in fn.report()


def test_loops_says_which_inner_loops_llvm_vectorized():
    fn = gc.compile(_graph(lambda x: gc.exp(x) * 2 + x ** 3))
    found = fn.loops()
    assert list(found) == [ks.name for ks in fn.kernels.values()]
    (loops,) = found.values()
    assert loops and all(lp.vectorized and lp.width.endswith("x float") for lp in loops)
    text = fn.report(loops=True)
    assert "inner loops (LLVM)" in text and f"{len(loops)} of {len(loops)} inner loops vectorized" in text


_IR = """\
define i32 @_ZN6kernelB2(ptr %a) {
entry:
  br label %B1
B1:
  %x = fadd float %y, 1.0
  br i1 %c, label %B1, label %B2
B2:
  br label %B3
B3:
  %v = fmul <8 x float> %w, %w
  br i1 %d, label %B3, label %B4, !llvm.loop !1
B4:
  br i1 %e, label %B4, label %B5, !llvm.loop !2
B5:
  ret i32 0
}
!0 = !{!"llvm.loop.isvectorized", i32 1}
!1 = distinct !{!1, !0}
!2 = distinct !{!2, !0}
"""


def test_the_ir_reader_counts_innermost_loops_but_not_remainders():
    """B1 a scalar loop, B3 a vectorized one, B4 its scalar remainder (marked vectorized)."""
    assert loops_in_ir(_IR) == [Loop("kernel", False, None), Loop("kernel", True, "8 x float")]
    assert describe(loops_in_ir(_IR)) == "1 of 2 inner loops vectorized (8 x float); scalar: in the kernel"


def test_cuda_executables_have_no_cpu_loops():
    from graphc.codegen import numba_cuda

    if not (numba_cuda.simulator() or numba_cuda.gpu_available()):
        pytest.skip("no CUDA target here")
    with pytest.raises(gc.CompileError, match="no such loops"):
        gc.compile(_graph(lambda x: x * 2, n=8), target="cuda").loops()


_UNROLLED = """\
define i32 @_ZN6kernelB2(ptr %a) {
B0:
  br i1 %c, label %early, label %check
ret:
  ret i32 0
early:
  br label %ret
check:
  br i1 %alias, label %L.preheader, label %vector.body
L.preheader:
  br label %L
L:
  %x = fmul float %y, %y
  br i1 %d, label %ret, label %L, !llvm.loop !1
vector.body:
  %v = fmul <16 x float> %w, %w
  br label %ret
}
!0 = !{!"llvm.loop.isvectorized", i32 1}
!1 = distinct !{!1, !0}
"""


def test_a_branch_back_in_the_text_is_no_loop_and_a_checked_fallback_is_its_vector_code():
    """``early -> ret`` jumps back in the text but not in the control flow; ``L`` is the scalar
    loop an alias check runs instead of the vector code LLVM unrolled completely."""
    assert loops_in_ir(_UNROLLED) == [Loop("kernel", True, "16 x float")]
