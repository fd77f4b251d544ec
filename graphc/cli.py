"""The ``graphc`` command. User mistakes print one line to stderr and exit 1, never a traceback."""

import argparse
import sys

import numpy as np

from . import examples
from .version import __version__
from .errors import GraphcError
from .ir.dot import to_dot
from .ir.interpret import evaluate
from .ir.serialize import load, save, to_json
from .ir.printing import to_text
from .passes.autodiff import grad
from .passes.budget import Budget
from .compiler import TARGETS, compile
from .passes.remat import STRATEGIES
from .passes.simplify import simplify
from .profile import (budget_bytes, format_residuals, format_table, has_backward, no_backward, plot_pareto,
                              plot_timeline, profile_remat, pyplot)


def _show(args) -> None:
    g = load(args.file)
    sys.stdout.write({"text": to_text, "dot": to_dot, "json": to_json}[args.format](g))


def _derive(g, of, wrt):
    """grad, simplified, and the node counts before and after simplification."""
    raw = grad(g, of=of, wrt=wrt, simplify=False)
    dg = simplify(raw)
    return dg, f"{len(raw.nodes)} values as derived, {len(dg.nodes)} after simplification"


def _grad(args) -> None:
    g = load(args.file)
    dg, counts = _derive(g, args.of, args.wrt.split(",") if args.wrt else None)
    if args.output:
        (save if args.output.endswith(".json") else _save_text)(dg, args.output)
        print(f"wrote {args.output}: {counts}")
    else:
        sys.stdout.write(to_text(dg))
        print(f"# {counts}", file=sys.stderr)


def _save_text(g, path: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(to_text(g))


def _compile(args) -> None:
    g = load(args.file)
    remat = Budget(budget_bytes(g, [args.budget])[0]) if args.budget else args.remat
    fn = compile(g, target=args.target, fuse=not args.no_fuse, remat=remat, dump=args.dump)
    sys.stdout.write(fn.report())
    if args.dump:
        print(f"IR after every pass and the kernels' source: {args.dump}/")


def _profile(args) -> None:
    strategies = [s.strip() for s in args.remat.split(",") if s.strip()]
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown or not (strategies or args.budget):
        raise GraphcError(f"--remat: unknown strategies {unknown}; choose from {', '.join(STRATEGIES)}")
    if args.plot or args.timeline:
        pyplot()  # says how to install matplotlib before any work is done
    budgets = [b.strip() for b in args.budget.split(",") if b.strip()] if args.budget else []
    g = load(args.file)
    if not has_backward(g):
        raise GraphcError(f"{args.file}: {no_backward(g)}; derive the gradient graph first "
                          f"(graphc grad {args.file} -o grad.json) and profile that")
    rows = profile_remat(g, strategies, budgets, repeat=args.repeat)
    sys.stdout.write(format_table(rows))
    if args.residuals:
        for r in rows:
            sys.stdout.write(format_residuals(r["executable"]))
    for path, plot in ((args.plot, plot_pareto), (args.timeline, plot_timeline)):
        if path:
            plot(rows, path)
            print(f"wrote {path}")


def _progress(step: int, total: int, loss: float, width: int = 30) -> str:
    done = width * step // total
    return f"[{'#' * done}{'.' * (width - done)}] {step:>4}/{total}  loss {loss:.6g}"


def _demo(args) -> None:
    g = examples.two_layer()
    print("graphc demo: the two-layer net  h = sigmoid(x @ w1),  loss = sum((h @ w2 - y)**2)\n")
    print(to_text(g))
    rng = np.random.default_rng(0)
    arrays = {n: rng.standard_normal(v.shape).astype(v.dtype) for n, v in g.arguments.items()}
    loss = evaluate(g, **arrays)["loss"]
    print(f"reference interpreter: loss = {float(loss):.6g} on random data (seed 0)\n")
    dg, counts = _derive(g, "loss", ["w1", "w2"])
    print(f"the gradient graph (gc.grad): {counts}\n")
    print(to_text(dg))
    step = compile(examples.sgd_step(dg, args.lr))
    print(f"compiled one SGD step (forward, backward, update; lr {args.lr}); training {args.steps} steps:")
    tty = sys.stdout.isatty()
    for k in range(1, args.steps + 1):
        out = step(**arrays)
        arrays["w1"], arrays["w2"] = out["new_w1"], out["new_w2"]
        if k == 1 or k % max(1, args.steps // 10) == 0 or k == args.steps:
            print(_progress(k, args.steps, float(out["loss"])), end="\r" if tty and k < args.steps else "\n")
    print()
    print(step.report())
    if args.save:
        save(g, args.save)
        print(f"saved the graph to {args.save}; try: graphc show {args.save}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="graphc", description="graphc: a static-graph compiler for "
                                     "differentiable programs")
    parser.add_argument("--version", action="version", version=f"graphc {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="build the two-layer net, evaluate it, derive its gradient, print both")
    demo.add_argument("--save", metavar="FILE.json", help="also save the graph as JSON")
    demo.add_argument("--steps", type=int, default=300, help="SGD steps to train (default 300)")
    demo.add_argument("--lr", type=float, default=1e-4, help="learning rate (default 1e-4)")
    demo.set_defaults(run=_demo)
    show = sub.add_parser("show", help="print a saved graph as text, DOT or JSON")
    show.add_argument("file")
    show.add_argument("--format", choices=("text", "dot", "json"), default="text")
    show.set_defaults(run=_show)
    comp = sub.add_parser("compile", help="compile a saved graph and print the report")
    comp.add_argument("file")
    comp.add_argument("--no-fuse", action="store_true", help="one kernel per op")
    comp.add_argument("--dump", metavar="DIR", help="write the IR after every pass and the kernels here")
    how = comp.add_mutually_exclusive_group()
    how.add_argument("--remat", choices=STRATEGIES, default="none", help="rematerialization strategy")
    how.add_argument("--budget", metavar="N|60%", help="the least recompute whose planned peak fits: bytes, "
                     "or a share of the remat=none plan's peak")
    comp.add_argument("--target", choices=TARGETS, default="cpu", help="cpu, cuda (an NVIDIA GPU) or auto")
    comp.set_defaults(run=_compile)
    prof = sub.add_parser("profile", help="measure the memory/recompute trade-off of remat strategies")
    prof.add_argument("file")
    prof.add_argument("--remat", default=",".join(STRATEGIES), help="comma-separated strategies "
                      f"(default {','.join(STRATEGIES)})")
    prof.add_argument("--budget", metavar="60%,40%", help="also plan under these budgets: a share of the "
                      "remat=none plan's peak, or bytes")
    prof.add_argument("--repeat", type=int, default=5, help="timed calls per plan (default 5)")
    prof.add_argument("--residuals", action="store_true", help="list what each plan saves or recomputes")
    prof.add_argument("--plot", metavar="OUT.png", help="draw peak memory against recompute (needs matplotlib)")
    prof.add_argument("--timeline", metavar="OUT.png", help="draw live bytes across the schedule (needs matplotlib)")
    prof.set_defaults(run=_profile)
    gr = sub.add_parser("grad", help="derive the gradient graph of a saved graph")
    gr.add_argument("file")
    gr.add_argument("--of", help="the scalar output to differentiate (default: the only output)")
    gr.add_argument("--wrt", help="comma-separated inputs/params (default: all params)")
    gr.add_argument("-o", "--output", metavar="OUT", help="write the graph here (.json: JSON, else text)")
    gr.set_defaults(run=_grad)
    args = parser.parse_args(argv)
    try:
        args.run(args)
    except (GraphcError, OSError) as e:
        print(f"graphc: error: {e}", file=sys.stderr)
        return 1
    return 0
