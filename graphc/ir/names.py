"""Names of graphs, inputs, params and outputs: identifiers, so they are keyword arguments
(``fn(x=...)``), print unquoted in the text form and are safe in every export format."""

import re

from ..errors import GraphError

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def check_name(name, what: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise GraphError(f"{what} {name!r} is not a valid name (letters, digits and _, not starting with a digit)")
    return name
