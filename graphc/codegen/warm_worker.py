"""A compile worker (``python -m graphc.codegen.warm_worker``, started by ``warm``).

It reads one job a line on stdin, JSON ``{"source": kernel source, "types": base64 pickle of a
list of argument types}``, imports the kernel from the cache directory (``GRAPHC_CACHE_DIR``),
compiles it for each, which writes numba's cache files, seals them, and answers ``ok``
or ``error <what>`` a line on stdout. It exits when stdin closes.
"""

import base64
import json
import pickle
import sys

from graphc.codegen.cache import load_kernel, seal


def main() -> None:
    replies, sys.stdout = sys.stdout, sys.stderr  # whatever else prints must not garble the answers
    for line in sys.stdin:
        try:
            job = json.loads(line)
            kernel = load_kernel(job["source"])
            for types in pickle.loads(base64.b64decode(job["types"])):
                kernel.compile(types)
            seal(job["source"])
            reply = "ok"
        except Exception as e:  # noqa: BLE001 - any failure is reported; the parent compiles the kernel itself
            reply = "error " + " ".join(repr(e).split())[:300]
        replies.write(reply + "\n")
        replies.flush()


if __name__ == "__main__":
    main()
