"""python -m benchmarks [--quick] [--threads N] [--only CASES] [--rounds N] [--json F] [--plot F]

Cases (in order): train, layers, kernels, gemm, inference, memory, and the optional
inference-e2e and opencv-dnn (needs onnx). See benchmarks/README.md for what each
measures and the targets.

Each framework is measured in a fresh process of its own, case by case, alternately
(see benchmarks/runner.py); ``--same-process`` measures both in this one. In the PyTorch
process it is imported BEFORE minicnn. Importing ``minicnn.kernels`` sets
OMP_WAIT_POLICY=PASSIVE for Numba's OpenMP runtime (see that module); importing torch
first lets torch's own OpenMP runtime start with its defaults, so each framework runs
as it would on its own.
"""

from __future__ import annotations

import argparse
import os
import sys

from benchmarks.runner import CASES


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="minicnn vs PyTorch CPU: training step, layers, kernels, GEMM share, "
                    "inference and memory. Prints a table; ratio > 1 means minicnn better.")
    p.add_argument("--quick", action="store_true", help="fewer repeats (about a minute)")
    p.add_argument("--smoke", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                   help="threads for Numba, OpenBLAS and torch (default: all cores)")
    p.add_argument("--only", default="",
                   help=f"comma-separated cases to run, from: {', '.join(CASES)}")
    p.add_argument("--rounds", type=int, default=1,
                   help="measure every case N times, alternating the frameworks, and keep "
                        "each one's best figure (for a machine shared with other work)")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.add_argument("--plot", metavar="FILE", help="also plot the ratios as a PNG")
    p.add_argument("--same-process", action="store_true",
                   help="measure minicnn and PyTorch in this one process (their OpenMP "
                        "thread pools then share the cores; not recommended)")
    p.add_argument("--side", choices=("minicnn", "torch"), help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    only = [c.strip() for c in args.only.split(",") if c.strip()] or None
    if args.rounds < 1:
        print(f"error: --rounds must be at least 1, got {args.rounds}", file=sys.stderr)
        return 2

    from benchmarks import report
    from benchmarks.runner import run_all, run_isolated

    def progress(msg):
        print(msg, file=sys.stderr, flush=True)

    try:
        if args.same_process or args.side:
            result = run_all(mode, args.threads, only, progress=progress)
        else:
            result = run_isolated(mode, args.threads, only, progress=progress,
                                  rounds=args.rounds)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print("\n".join(report.header_lines(mode, result["machine"], result["threads"])))
    print()
    print(report.table(result["rows"]))
    print()
    print("seconds per case: " + ", ".join(f"{k} {v}" for k, v in result["seconds"].items()))
    for name, why in result["skipped"].items():
        print(f"skipped {name}: {why}")
    for name, why in result["errors"].items():
        print(f"FAILED {name}: {why}")
    if args.json:
        report.write_json(args.json, result)
        print(f"wrote {args.json}")
    if args.plot:
        report.plot(args.plot, result["rows"],
                    f"minicnn / baseline ({mode}, {args.threads} threads, "
                    f"{result['machine']['cpu']})")
        print(f"wrote {args.plot}")
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
