"""Run the benchmarks and write their figures as one Markdown table: bench-results/BENCH.md.

    python -m scripts.bench.report [--quick] [--only train,infer,http] [--render-only]
                                   [--out-dir DIR] [--duration S] [--rounds R]

Runs scripts/bench/train.py, infer.py and http_load.py one after the other (never
together: they would measure each other), each writing DIR/<name>.json, then renders
DIR/BENCH.md from those files. --render-only re-renders from existing JSON files. --duration and
--rounds are passed to http_load.py. Exit status: 1 if a benchmark failed (an error response,
a socket error, a non-identical refit), else 0; missed speed goals are reported, not failed.
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
BENCHES = ("train", "infer", "http")
MODULES = {
    "train": "scripts.bench.train",
    "infer": "scripts.bench.infer",
    "http": "scripts.bench.http_load",
}


def run(name: str, out_dir: Path, args: argparse.Namespace) -> int:
    command = [
        sys.executable,
        "-m",
        MODULES[name],
        "--json",
        str(out_dir / f"{name}.json"),
    ]
    if args.quick:
        command.append("--quick")
    if name == "http":
        if args.duration is not None:
            command += ["--duration", str(args.duration)]
        if args.rounds is not None:
            command += ["--rounds", str(args.rounds)]
    print(f"$ {' '.join(Path(c).name if c == sys.executable else c for c in command)}", flush=True)
    return subprocess.run(command, cwd=REPO_ROOT, check=False).returncode


def load(out_dir: Path, name: str) -> dict[str, Any] | None:
    path = out_dir / f"{name}.json"
    if not path.is_file():
        return None
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _num(value: float, digits: int = 1) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.{digits}f}"


def machine_line(info: dict[str, Any]) -> str:
    blas = "; ".join(
        f"{b.get('internal_api')} {b.get('version')} ({b.get('architecture')}, "
        f"{b.get('num_threads')} threads)"
        for b in info.get("blas", [])
    )
    env = info.get("blas_env") or {}
    return (
        f"{info['cpu']}, {info['cores']} cores, load average {info['load_average']} at start; "
        f"Python {info['python']}, NumPy {info['numpy']}; BLAS {blas or 'unknown'}"
        + (f"; {env}" if env else "")
        + f"; {info['date']}"
    )


def render_train(data: dict[str, Any]) -> list[str]:
    s = data["settings"]
    lines = [
        "## Training (goal 4: at least 5x scikit-learn per iteration, bit-identical refits)",
        "",
        f"`python -m scripts.bench.train` — {s['rows']} rows, {s['hidden']} hidden units, "
        f"full-batch gradient descent, {s['iterations']} iterations a fit, {s['rounds']} "
        "interleaved rounds.",
        "",
        "| implementation | median µs/iteration | min µs/iteration | CPU µs/iteration |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, t in data["us_per_iteration"].items():
        lines.append(
            f"| {name} | {t['median']:.1f} | {t['min']:.1f} | {t.get('cpu_median', 0):.1f} |"
        )
    lo, hi = data["ratio_range"]
    lines += [
        "",
        f"Speed-up vs scikit-learn: **{data['ratio_vs_sklearn']:.2f}x** wall-clock (median of "
        f"per-round ratios; rounds {lo:.2f}-{hi:.2f}), {data['cpu_ratio_vs_sklearn']:.2f}x CPU "
        f"time; goal >= {data['goal_ratio']:g}x. Two fits bit-identical: "
        f"**{'yes' if data['bit_identical'] else 'NO'}**.",
        "",
    ]
    return lines


def render_infer(data: dict[str, Any]) -> list[str]:
    lines = [
        "## In-process inference",
        "",
        "`python -m scripts.bench.infer`",
        "",
        "| single row | median µs | p99 µs |",
        "| --- | ---: | ---: |",
    ]
    for name, v in data["single_row_us"].items():
        lines.append(f"| {name} | {v['median']:.1f} | {v['p99']:.1f} |")
    if "explain_us" in data:
        e = data["explain_us"]
        lines.append(f"| Artifact.explain, tuple row | {e['median']:.1f} | {e['p99']:.1f} |")
    lines += ["", "| batch | rows/s |", "| --- | ---: |"]
    for name, v in data["batch_rows_per_second"].items():
        lines.append(f"| {name} | {v:,.0f} |")
    steps = data.get("v2_step_us")
    if steps:
        names = list(steps)
        lines += [
            "",
            "| V2 infer step, 10,000 rows, fastest µs | " + " | ".join(names) + " |",
            "| --- |" + " ---: |" * len(names),
        ]
        for step in steps[names[0]]:
            lines.append(
                f"| {step} | " + " | ".join(f"{steps[n][step]:,.0f}" for n in names) + " |"
            )
    lines.append("")
    return lines


def render_http(data: dict[str, Any]) -> list[str]:
    s = data["settings"]
    lines = [
        "## HTTP (goals 1-3), wrk on loopback",
        "",
        f"`python -m scripts.bench.http_load` — {s['rounds']} interleaved round(s) of "
        f"{s['duration_s']:g} s per scenario; wrk threads: {s.get('wrk_threads', '2')}. "
        "Figures are medians over rounds; errors are totals.",
        "",
        "| scenario | req/s | rows/s | p50 ms | p99 ms | non-2xx | socket errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for key, row in data["scenarios"].items():
        lines.append(
            f"| {key} | {row['rps']:,.0f} | {row['rows_per_s']:,.0f} | {row['p50_ms']:.2f} | "
            f"{row['p99_ms']:.2f} | {row['non_2xx']} | {row['socket_errors']} |"
        )
    lines += ["", "| goal | value | target | met |", "| --- | ---: | --- | --- |"]
    for name, g in data["goals"].items():
        met = "" if g["target"].startswith("(") else ("yes" if g["met"] else "**no**")
        lines.append(f"| {name} | {_num(g['value'], 2)} | {g['target']} | {met} |")
    memory = f"Resident memory after the run (MB, per serving process): {data['rss_mb']}"
    if "v2_peak_rss_mb" in data:  # one paragraph: a line of its own would start with ";"
        memory += f"; peak while serving 100,000-row V2 requests: {data['v2_peak_rss_mb']:.1f} MB."
    if "writer_rss_mb" in data:
        memory += f" Record writer processes (MB, one per worker): {data['writer_rss_mb']}."
    lines += ["", memory, ""]
    return lines


def render(out_dir: Path) -> str:
    parts = {name: load(out_dir, name) for name in BENCHES}
    lines = ["# Benchmarks", ""]
    first = next((p for p in parts.values() if p is not None), None)
    if first is None:
        return "# Benchmarks\n\nNo results yet: run `make bench`.\n"
    lines += [f"Machine: {machine_line(first['machine'])}.", ""]
    lines += [
        "These machines are shared and noisy (the same run repeated differs by 20-40%): compare",
        "the ratios within one run rather than absolute figures across runs. Rerun with",
        "`make bench` (or `python -m scripts.bench.report [--quick]`).",
        "",
    ]
    if parts["train"]:
        lines += render_train(parts["train"])
    if parts["infer"]:
        lines += render_infer(parts["infer"])
    if parts["http"]:
        lines += render_http(parts["http"])
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="each benchmark's quick mode")
    p.add_argument("--only", default=",".join(BENCHES), help="comma-separated subset to run")
    p.add_argument("--render-only", action="store_true", help="only rewrite BENCH.md")
    p.add_argument("--out-dir", type=Path, default=REPO_ROOT / "bench-results")
    p.add_argument("--duration", type=float, help="seconds per wrk run (http_load.py)")
    p.add_argument("--rounds", type=int, help="interleaved rounds (scripts/bench/http_load.py)")
    args = p.parse_args()
    unknown = set(args.only.split(",")) - set(BENCHES)
    if unknown:
        p.error(f"--only: unknown benchmark(s) {', '.join(sorted(unknown))}")
    return args


def main() -> int:
    args = parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    failed = []
    if not args.render_only:
        for name in BENCHES:
            if name in args.only.split(",") and run(name, args.out_dir, args) != 0:
                failed.append(name)
    report = args.out_dir / "BENCH.md"
    report.write_text(render(args.out_dir), encoding="utf-8")
    print(f"wrote {report}")
    if failed:
        print(f"scripts.bench.report: failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
