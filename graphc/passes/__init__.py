"""Compiler passes over the IR (graph in, graph out): autodiff, simplification, fusion,
rematerialization, scheduling and memory planning. Each lands with its issue; see DESIGN.md."""
