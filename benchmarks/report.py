"""Output of a benchmark run: the printed table, the JSON file and the ratio plot."""

from __future__ import annotations

import json
from typing import Any

from benchmarks.common import Row

# group -> (what it measures, what the baseline column is)
GROUPS: dict[str, tuple[str, str]] = {
    "train": ("1. training step: forward + backward + Adam, float32",
              "baseline = PyTorch; ratio = ours / torch img/s"),
    "layers": ("2. per layer: Conv2D and MaxPool2D forward / backward",
               "baseline = torch.nn.functional; ratio = torch ms / ours ms"),
    "kernels": ("3. kernels: naive / numpy / numba, effective bandwidth",
                "baseline = np.copyto of the same bytes; ratio = ours / copy GB/s"),
    "gemm": ("4. GEMM efficiency: Conv2D GFLOP/s vs its own GEMMs alone",
             "baseline = plain matmul, same shapes; ratio = share of GEMM speed"),
    "inference": ("5. inference: eval mode, batch norm and ReLU folded, one face and a batch",
                  "baseline = PyTorch (eval, no_grad); ratio > 1: minicnn faster"),
    "memory": ("6. memory: peak RSS a training step adds (fresh subprocesses)",
               "baseline = PyTorch; ratio = torch MB / ours MB"),
    "inference-e2e": ("inference end to end (benchmarks/bench_inference.py)",
                      "as reported by that module"),
    "opencv-dnn": ("7. inference, the same model exported to ONNX (benchmarks/bench_onnx.py)",
                   "baseline = OpenCV DNN, and onnxruntime if installed; ratio > 1: minicnn "
                   "faster"),
}


def fmt(v: float | None) -> str:
    if v is None:
        return "-"
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.3g}"


def _isolated_line(rounds: int) -> str:
    line = ("minicnn and PyTorch each measured in a fresh process of its own, case by case, "
            "alternately")
    if rounds > 1:
        line += f"; {rounds} rounds, each figure the best of its rounds"
    return line


def header_lines(mode: str, machine: dict[str, Any], threads: dict[str, Any]) -> list[str]:
    torch_line = (f"PyTorch {machine['torch']}" if machine.get("torch")
                  else "PyTorch not installed — minicnn figures only")
    load = machine.get("load_average_1min")
    lines = [
        f"minicnn benchmarks ({mode} mode)",
        f"machine : {machine['cpu']}, {machine['cores']} cores "
        f"({machine['usable_cores']} usable), {machine['platform']}",
        f"software: Python {machine['python']}, NumPy {machine['numpy']} "
        f"(BLAS: {machine['numpy_blas']}, core {machine.get('openblas_core') or '?'}), "
        f"Numba {machine.get('numba') or 'not installed'}, "
        f"{torch_line}",
        "threads : " + ", ".join(f"{k} {v}" for k, v in threads.items())
        + f"; Numba threading layer {machine.get('numba_threading_layer') or '-'}"
        + f"; OMP_WAIT_POLICY: torch {machine['omp_wait_policy']}, "
        f"Numba {machine.get('omp_wait_policy_numba', '?')}",
        f"load    : 1-min load average {load} at start"
        + (" — THE MACHINE IS BUSY, figures are not trustworthy"
           if load is not None and load > 0.5 * (machine['usable_cores'] or 1) else ""),
        "process : " + (_isolated_line(machine.get("rounds") or 1)
                        if machine.get("isolated") else "one process for everything"
                        + "".join(f"; {k}={v} was set (NumPy had loaded OpenBLAS with it)"
                                  for k, v in (machine.get("openblas_env") or {}).items())),
        "ratio   : HIGHER IS BETTER for minicnn in every row (rates: ours/baseline; "
        "times and memory: baseline/ours); each group names its baseline",
    ]
    return lines


def table(rows: list[Row]) -> str:
    head = ("case", "minicnn", "baseline", "ratio", "unit", "target", "note")
    out: list[str] = []
    groups = list(dict.fromkeys(r.group for r in rows))
    cells = {id(r): (r.case, fmt(r.ours), fmt(r.theirs),
                     "-" if r.ratio is None else f"{r.ratio:.2f}", r.unit,
                     "" if r.target is None else
                     f">={r.target:.2f} {'ok' if r.meets else 'MISS' if r.meets is False else ''}",
                     r.note) for r in rows}
    widths = [max([len(head[i])] + [len(c[i]) for c in cells.values()]) for i in range(6)]

    def line(c):
        return "  ".join([c[0].ljust(widths[0]), *(c[i].rjust(widths[i]) for i in range(1, 4)),
                          c[4].ljust(widths[4]), c[5].ljust(widths[5]), c[6]]).rstrip()

    out.append(line(head))
    out.append("-" * len(line(head)))
    for g in groups:
        title, base = GROUPS.get(g, (g, ""))
        out.append(f"[{title}]  ({base})" if base else f"[{title}]")
        out += [line(cells[id(r)]) for r in rows if r.group == g]
    return "\n".join(out)


def write_json(path: str, result: dict[str, Any]) -> None:
    data = dict(result)
    data["rows"] = [r.as_dict() for r in result["rows"]]
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, default=str)


def plot(path: str, rows: list[Row], title: str) -> None:
    """Horizontal bars of every row's ratio, a line at 1.0, targets as ticks."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if r.ratio is not None]
    if not rows:
        return
    labels = [f"{r.group}: {r.case}" for r in rows][::-1]
    ratios = [r.ratio for r in rows][::-1]
    colors = [{True: "tab:green", False: "tab:red", None: "tab:gray"}[r.meets]
              for r in rows][::-1]
    fig, ax = plt.subplots(figsize=(10, 0.8 + 0.22 * len(rows)))
    # log scale: ratios are multiplicative (2x faster and 2x slower are equally far from 1)
    ax.barh(range(len(rows)), [min(max(r, 1e-3), 1e3) for r in ratios], color=colors)
    ax.set_xscale("log")
    for i, r in enumerate(rows[::-1]):
        if r.target is not None and r.target != 1.0:
            ax.plot([r.target, r.target], [i - 0.4, i + 0.4], color="black", lw=1)
    ax.axvline(1.0, color="black", ls="--", lw=1)
    ax.set_yticks(range(len(rows)), labels, fontsize=7)
    ax.set_xlabel("ratio, log scale (higher is better for minicnn; green/red: target "
                  "met/missed, grey: no target; black tick: a target other than 1)")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
