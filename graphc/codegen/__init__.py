"""Code generation: fused groups to Numba kernels (CPU and CUDA) with an on-disk kernel cache."""
