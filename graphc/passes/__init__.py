"""Compiler passes over the IR, target-neutral: autodiff, simplification, rematerialization
(with the budget search and the analyses they share), fusion, scheduling and memory planning;
``pipeline`` runs them in order. They decide on the op classes of ``ir/ops.py``; none imports
code generation or the runtime (docs/COMPILER.md has the layers)."""
