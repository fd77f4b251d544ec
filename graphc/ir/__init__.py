"""The IR: dtypes, shapes, values and graphs, the op table, the builder, the reference
interpreter, the verifier, and the text, JSON and DOT forms."""

from . import build  # noqa: F401,E402  (gives Value its operators, whatever module of ir is imported first)
