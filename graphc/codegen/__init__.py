"""Code generation: a plan's steps to Numba kernels. ``kernel`` is the target-neutral part
(kernel sources, operand access, the scalar lowering, reduction phases); ``numba_cpu`` and
``numba_cuda`` are its two emitters; ``cache`` and ``warm`` keep and compile the kernels."""
