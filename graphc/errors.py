"""The exceptions graphc raises for user mistakes.

Every error a user can cause is a ``GraphcError`` (a ``ValueError``), so one ``except`` catches
them all, and the subclass says what kind of thing was wrong. Messages name the value, input or
op at fault, what was expected and what came.
"""


class GraphcError(ValueError):
    """Base class of every error graphc raises for bad input."""


class ShapeError(GraphcError):
    """Shapes that do not fit an op (or an input whose shape is not the declared one)."""


class DTypeError(GraphcError):
    """A dtype an op does not accept (or an input whose dtype is not the declared one)."""


class GraphError(GraphcError):
    """A malformed graph or IR file: cycles, dangling values, unknown ops, bad names."""


class ArgumentError(GraphcError, TypeError):
    """A call with a missing or unexpected argument name (or an option outside its choices)."""


class DataError(GraphcError):
    """Input data outside an op's domain at run time, e.g. a label out of range."""


class CompileError(GraphcError):
    """A graph that cannot be compiled as asked (target, strategy, budget)."""


class BudgetError(CompileError):
    """A ``gc.Budget`` below the least planned peak any plan reaches; ``least_peak_bytes`` says
    what the search did reach (``Budget(least_peak_bytes)`` compiles)."""

    def __init__(self, message: str, least_peak_bytes: int):
        super().__init__(message)
        self.least_peak_bytes = least_peak_bytes


class ResourceError(GraphcError, MemoryError):
    """A run whose arrays do not fit the memory at hand: a numpy allocation that failed, named
    with the value or graph it was for. It is a ``MemoryError`` too, so code that catches those
    still does."""


class GradientCheckError(GraphcError):
    """``gc.check_grads`` found a derivative that disagrees with finite differences; the message
    names the mode, argument and worst element, and ``comparison`` holds the figures."""

    def __init__(self, message: str, comparison=None):
        super().__init__(message)
        self.comparison = comparison


class GraphcWarning(UserWarning):
    """Something graphc worked around but the user should know of, e.g. a kernel cache directory
    it could not use or trust (``GRAPHC_CACHE_DIR``), replaced by a private temporary one."""
