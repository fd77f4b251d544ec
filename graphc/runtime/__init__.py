"""The runtime: executables that run a compiled plan, buffer arenas, and the profiler."""
