"""``Plan``: everything the compiler made of a graph, which an executable runs whole."""

from dataclasses import asdict, dataclass, field

from ..codegen.kernel import KernelSource
from ..ir.graph import Graph
from ..passes.memory import MemoryPlan
from ..passes.pipeline import StepPlan
from ..passes.remat import Remat


@dataclass(frozen=True)
class Stats:
    """The plan's figures (``fn.stats`` is this as a dict)."""

    n_kernels: int  # steps that run (loop kernels and library calls)
    n_loop_kernels: int  # generated kernels
    n_library_calls: int
    n_values: int
    flops: int
    peak_bytes: int
    arena_bytes: int
    saved_bytes: int  # activations kept for the backward
    recompute_flops: int
    forward_flops: int
    remat: str  # the strategy, or "Budget(bytes=N)"
    remat_note: str  # how a budget search chose the plan
    target: str

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Plan:
    """What the passes made (the rewritten graph, its steps in order, the memory plan, the remat
    rewrite), each step's kernel (by step name), the figures and the report."""

    passes: StepPlan
    kernels: dict[str, KernelSource]  # by step name
    stats: Stats
    report: str
    copies: dict = field(default_factory=dict)  # CUDA: output value id -> kernel copying a view or argument

    @property
    def graph(self) -> Graph:
        """What the steps compute."""
        return self.passes.graph

    @property
    def steps(self) -> list:
        """The scheduled groups (``passes.fusion.Group``)."""
        return self.passes.steps

    @property
    def memory(self) -> MemoryPlan:
        return self.passes.memory

    @property
    def remat(self) -> Remat:
        return self.passes.remat

    @property
    def residuals(self) -> list:
        """Rows: each activation kept ("saved") or recomputed for the backward."""
        return self.passes.residuals
