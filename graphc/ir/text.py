"""The text form of the IR, parsed: one value a line, readable like a jaxpr (printed by
``printing.to_text``).

    graph two_layer {
      %0:f32[64,1000] = input x
      %2:f32[1000,100] = param w1
      %4:f32[64,100] = matmul %0 %2
      %5:f32[64,100] = sigmoid %4
      %7:f32[] = const 2.0
      %11:f32[] = sum[axes=[0,1], keepdims=false] %10
      output loss = %11
    }

``to_text(from_text(t)) == t`` for any text ``to_text`` printed. Floats print as the shortest
decimal that reads back to the same value of their dtype. ``#`` starts a comment. The parser is
a tokenizer and a few rules; nothing in the text is ever evaluated as code.
"""

import difflib
import math
import re


from ..errors import GraphError
from . import dtypes as dt
from .assemble import OutputRecord, Record, assemble, const_array
from .ops import ARGUMENTS, OPS, TensorType

# ---------------------------------------------------------------- parsing

_TOKEN = re.compile(r"""
    (?P<label>%\d+)
  | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+](?:inf|nan))
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<punct>[\[\](){},=:])
""", re.VERBOSE | re.ASCII)  # ASCII: \d would match other scripts' digits, and int() would read them


class _Line:
    """Tokens of one line, consumed left to right; errors name the line."""

    def __init__(self, text: str, number: int):
        self.loc = f"line {number}"
        self.tokens = []
        self.columns = []  # where each token starts, from 1
        pos = 0
        text = text.split("#", 1)[0].rstrip()
        while pos < len(text):
            if text[pos].isspace():
                pos += 1
                continue
            m = _TOKEN.match(text, pos)
            if not m:
                raise GraphError(f"{self.loc}, column {pos + 1}: unexpected character {text[pos]!r}")
            self.tokens.append((m.lastgroup, m.group()))
            self.columns.append(pos + 1)
            pos = m.end()
        self.pos = 0

    def fail(self, expected: str):
        got = self.tokens[self.pos][1] if self.pos < len(self.tokens) else "end of line"
        raise GraphError(f"{self.loc}: expected {expected}, got {got!r}")

    def peek(self, text=None, kind=None) -> bool:
        if self.pos >= len(self.tokens):
            return False
        k, t = self.tokens[self.pos]
        return (text is None or t == text) and (kind is None or k == kind)

    def take(self, text=None, kind=None, expected=None) -> str:
        if not self.peek(text, kind):
            self.fail(expected or repr(text) if text else expected or kind)
        self.pos += 1
        return self.tokens[self.pos - 1][1]

    def at(self) -> str:
        """Where the next token is: the line and column."""
        return f"{self.loc}, column {self.columns[self.pos]}" if self.pos < len(self.tokens) else self.loc

    def done(self) -> bool:
        return self.pos == len(self.tokens)

    def end(self):
        if not self.done():
            self.fail("end of line")

    def label(self) -> int:
        return int(self.take(kind="label", expected="a value like %3")[1:])

    def int(self) -> int:
        t = self.take(kind="number", expected="an integer")
        if not re.fullmatch(r"[-+]?[0-9]+", t):
            self.fail("an integer")
        return int(t)

    def ints(self) -> tuple[int, ...]:
        self.take("[")
        out = []
        while not self.peek("]"):
            if out:
                self.take(",")
            out.append(self.int())
        self.take("]")
        return tuple(out)

    def type(self) -> TensorType:
        code = self.take(kind="word", expected="a dtype like f32")
        if code not in dt.FROM_SHORT:
            raise GraphError(f"{self.loc}: unknown dtype {code!r} (expected one of {', '.join(dt.FROM_SHORT)})")
        return TensorType(self.ints(), dt.FROM_SHORT[code])

    def scalar(self):
        kind, t = self.tokens[self.pos] if self.pos < len(self.tokens) else (None, None)
        if kind == "number" or t in ("inf", "nan"):
            where = self.at()
            self.pos += 1
            if not re.search(r"[.eEna]", t):
                return int(t)
            x = float(t)
            if math.isinf(x) and "inf" not in t:
                raise GraphError(f"{where}: number {t} is out of range for float64; write inf for an infinity")
            return x
        if t in ("true", "false"):
            self.pos += 1
            return t == "true"
        self.fail("a number")

    def literal(self) -> list:
        """Scalars of a (possibly nested) list literal, flattened in order."""
        if not self.peek("["):
            return [self.scalar()]
        self.take("[")
        out = []
        first = True
        while not self.peek("]"):
            if not first:
                self.take(",")
            out += self.literal()
            first = False
        self.take("]")
        return out

    def attr(self, kind: str):
        if kind == "ints":
            return self.ints()
        if kind == "int":
            return self.int()
        word = self.take(kind="word", expected=f"a {kind}")
        if kind == "bool":
            if word not in ("true", "false"):
                raise GraphError(f"{self.loc}: expected true or false, got {word!r}")
            return word == "true"
        if word not in dt.FROM_SHORT:
            raise GraphError(f"{self.loc}: unknown dtype {word!r}")
        return dt.FROM_SHORT[word]


def unknown_op(op: str) -> str:
    """What to say of an op name the op table lacks: the names it may be a typo of, if any."""
    close = difflib.get_close_matches(op.lower(), OPS, n=3, cutoff=0.65)  # below 0.65: frobnicate -> concat
    return f"unknown op {op!r}" + (f"; did you mean {' or '.join(map(repr, close))}?" if close else "")


def _parse_node(line: _Line) -> Record:
    label = line.label()
    line.take(":")
    t = line.type()
    line.take("=")
    where = line.at()
    op = line.take(kind="word", expected="an op name")
    if op not in OPS:
        raise GraphError(f"{where}: {unknown_op(op)}")
    opdef = OPS[op]
    if op in ARGUMENTS:
        attrs = {"name": line.take(kind="word", expected="a name"), "shape": t.shape, "dtype": t.dtype}
        operands = ()
    elif op == "const":
        where = line.at()
        attrs = {"value": const_array(line.literal(), t, where)}
        operands = ()
    else:
        attrs = {}
        if line.peek("["):
            line.take("[")
            while not line.peek("]"):
                if attrs:
                    line.take(",")
                where = line.at()
                key = line.take(kind="word", expected="an attribute name")
                if key not in opdef.attrs:
                    raise GraphError(f"{where}: {op} has no attribute {key!r}")
                if key in attrs:
                    raise GraphError(f"{where}: {op} attribute {key!r} is given twice")
                line.take("=")
                attrs[key] = line.attr(opdef.attrs[key])
            line.take("]")
        operands = []
        while not line.done():
            operands.append(line.label())
    line.end()
    return Record(label, op, tuple(operands), attrs, t, line.loc)


def from_text(text: str):
    """Parse the text form back into a Graph; any fault is a GraphError naming the line."""
    if not isinstance(text, str):
        raise GraphError(f"from_text expects a str, got {type(text).__name__}")
    lines = [_Line(t, n) for n, t in enumerate(text.splitlines(), 1)]
    lines = [ln for ln in lines if ln.tokens]
    if not lines:
        raise GraphError("empty text: expected 'graph NAME {'")
    head = lines[0]
    head.take("graph", expected="'graph'")
    name = head.take(kind="word", expected="a graph name")
    head.take("{")
    head.end()
    if not (lines[-1].peek("}") and len(lines[-1].tokens) == 1) or len(lines) < 2:
        raise GraphError(f"{lines[-1].loc}: expected the closing '}}'")
    records, outputs = [], []
    for line in lines[1:-1]:
        try:
            if line.peek("output"):
                line.take("output")
                out_name = line.take(kind="word", expected="an output name")
                line.take("=")
                outputs.append(OutputRecord(out_name, line.label(), line.loc))
                line.end()
            else:
                records.append(_parse_node(line))
        except RecursionError:
            raise GraphError(f"{line.loc}: literal nested too deeply") from None
        except (ValueError, OverflowError) as e:  # e.g. an integer too long for Python to convert
            if isinstance(e, GraphError):
                raise
            raise GraphError(f"{line.loc}: {e}") from None
    return assemble(name, records, outputs)
