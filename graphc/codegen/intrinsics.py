"""LLVM-level helpers that generated kernels import: numba has no scalar bit cast, and building
a float32 from its bits is how a vectorizable exp scales by 2^n (see ``_exp32`` in numba_cpu);
nor a fused multiply-add, which gives a product's rounding error exactly (``_dd_mul``)."""

from llvmlite import ir
from numba import types
from numba.extending import intrinsic


@intrinsic
def f32_from_bits(typingctx, bits):
    """The float32 whose IEEE bits are the int32 ``bits``."""
    if bits != types.int32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return types.float32(types.int32), codegen


@intrinsic
def fma(typingctx, a, b, c):
    """``a * b + c`` rounded once (LLVM's fma, a single instruction where the CPU has one)."""
    if not (isinstance(a, types.Float) and a == b == c):
        return None

    def codegen(context, builder, signature, args):
        return builder.fma(*args)

    return a(a, a, a), codegen
