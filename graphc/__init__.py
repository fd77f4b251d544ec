"""graphc: a static-graph compiler for differentiable programs.

    import graphc as gc
    g = gc.Graph("net")
    x = g.input("x", (64, 1000)); w = g.param("w", (1000, 10))
    g.output("loss", gc.sum(gc.sigmoid(x @ w) ** 2))
    gc.evaluate(g, x=X, w=W)          # numpy reference interpreter
    print(gc.to_text(g))              # readable IR; gc.save/gc.load for JSON, gc.to_dot for Graphviz
"""

from .check import check_grads
from .errors import (ArgumentError, BudgetError, CompileError, DataError, DTypeError, GradientCheckError,
                     GraphcError, GraphError, GraphcWarning, ResourceError, ShapeError)
from .ir.build import (abs, add, argmax, argmin, broadcast_to, cast, checkpoint, concat, cos, div, eq, erf, exp,
                       expm1, fold, ge, gt, index_add, le, log, log1p, lt, matmul, max, maximum, mean, min, minimum,
                       mul, ne, neg, one_hot, pad, pow, random_uniform, reciprocal, relu, reshape, rsqrt, sigmoid, sign,
                       scatter_add, sin, softplus, sqrt, square, stop_gradient, sub, sum, take, take_along_axis,
                       tanh, transpose, where, windows)
from .ir.convolution import avg_pool2d, conv2d, flatten, max_pool2d
from .ir.composites import (BatchNorm, batch_norm, cross_entropy, dropout, gelu, l2_regularization, layer_norm,
                            linear, log_softmax, logsumexp, mse, softmax, svm_loss)
from .ir.dot import to_dot
from .ir.graph import Graph, Value
from .ir.interpret import evaluate
from .ir.ops import OPS
from .ir.serialize import from_json, load, save, to_json
from .ir.printing import to_text
from .ir.text import from_text
from .ir.verify import verify
from .passes.autodiff import grad, jvp, vjp
from .passes.budget import Budget
from .compiler import compile
from .passes.simplify import simplify
from .profile import profile_remat
from .runtime.blas import blas_threads, get_blas_threads, set_blas_threads
from .version import __version__
