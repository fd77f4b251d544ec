"""The runtime: executables that run a compiled ``Plan`` (on the CPU, or on a CUDA device) over
one arena of buffers."""
