"""Regenerate README's fresh-clone figures: clone this repository into a new folder, run the two
Quickstart commands there exactly as a new user would (``bash scripts/demo.sh``, then
``bash scripts/test.sh``), time them, and write what they printed into README.md.

    python3 scripts/fresh_clone_figures.py                  # run both (about 30 min on 2 cores), update README
    python3 scripts/fresh_clone_figures.py --apply-only     # rewrite README from the last recorded run

Needs only Python's standard library (it runs before any set-up). The run is recorded in
``docs/figures/fresh_clone.json`` (commit, machine, command times, the demo's table and the test
summary, as printed); README's figures live between ``<!-- fresh-clone:NAME -->`` and
``<!-- /fresh-clone:NAME -->`` markers, and only those blocks are rewritten. A command that fails
stops the script with that command's exit status and leaves README untouched.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RECORD = ROOT / "docs" / "figures" / "fresh_clone.json"
README = ROOT / "README.md"


def machine() -> str:
    """'N cores, MODEL, RAM GiB' from /proc (Linux), else platform's names."""
    model = platform.processor() or platform.machine()
    try:
        text = Path("/proc/cpuinfo").read_text()
        found = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
        model = found.group(1).strip() if found else model
        mem_kb = int(re.search(r"^MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text(), re.M).group(1))
    except (OSError, AttributeError):
        return f"{os.cpu_count()} cores, {model}"
    gpu = "with a GPU" if Path("/dev/nvidia0").exists() else "no GPU"
    return f"{os.cpu_count()} cores, {model}, {mem_kb / 2**20:.0f} GiB, {gpu}"


def run(cmd: list[str], cwd: Path, log: Path, env: dict[str, str]) -> tuple[float, str]:
    """Run `cmd` in `cwd` with `env`, streaming its output to the terminal and `log`; (seconds, output)."""
    print(f"$ {' '.join(cmd)}   (in a fresh clone; log: {log})", flush=True)
    t0 = time.time()
    out: list[str] = []
    with log.open("w") as f, subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                              text=True, bufsize=1, env=env) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            f.write(line)
            out.append(line)
    if proc.returncode:
        print(f"{' '.join(cmd)} failed with exit status {proc.returncode}; README left as it was (log: {log})",
              file=sys.stderr)
        sys.exit(proc.returncode)
    return time.time() - t0, "".join(out)


def demo_table(output: str) -> str:
    """The demo's printed summary: from its table header to its 'results:' line."""
    lines = output.splitlines()
    start = max(i for i, line in enumerate(lines) if line.startswith("task "))
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("results:"))
    return "\n".join(lines[start : end + 1])


def record_run(keep: Path | None) -> dict:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout.strip()
    where = Path(tempfile.mkdtemp(prefix="vfmbench-fresh-")) if keep is None else keep
    clone = where / "vfmbench"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    # a new user's empty vfmbench home: no embedding cache, runs index or weights from earlier runs
    env = {**os.environ, "VFMBENCH_HOME": str(where / "home")}
    demo_s, demo_out = run(["bash", "scripts/demo.sh"], clone, where / "demo.log", env)
    test_s, test_out = run(["bash", "scripts/test.sh"], clone, where / "test.log", env)
    results = json.loads((clone / "vfmbench-demo" / "results.json").read_text())
    summary = [line for line in test_out.splitlines() if re.search(r"\d+ passed", line)][-1].strip("= ")
    return {
        "commit": commit,
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "demo_command_seconds": round(demo_s),
        "demo_seconds": round(results["seconds"]),
        "demo_table": demo_table(demo_out),
        "demo_summary": {r["encoder"]: f"{r['success_mean']:.2f} ± {r['success_std']:.2f}"
                         for r in results["summary"]},
        "test_command_seconds": round(test_s),
        "test_summary": summary,
    }


def blocks(rec: dict) -> dict[str, str]:
    """README's fresh-clone blocks from a recorded run."""
    demo_min = rec["demo_command_seconds"] / 60
    scores = ", ".join(f"{k} {v}" for k, v in rec["demo_summary"].items())
    return {
        "demo-time": (f"From a fresh clone ({rec['machine']}; commit {rec['commit']}, {rec['date']}): "
                      f"{rec['demo_seconds']} s for the demo itself, {demo_min:.0f} min with the set-up. "
                      "Printed:"),
        "demo-table": f"```\n{rec['demo_table']}\n```",
        "measured": ("| Quickstart command, in a fresh clone | figure | where |\n|---|---|---|\n"
                     f"| default demo (`bash scripts/demo.sh`) | {rec['demo_seconds']} s "
                     f"({demo_min:.0f} min with set-up); {scores} | {rec['machine']} |\n"
                     f"| test suite (`bash scripts/test.sh`, after the demo's set-up) | "
                     f"{rec['test_summary']} ({rec['test_command_seconds']} s for the command) | {rec['machine']} |"),
    }


def apply(rec: dict) -> None:
    text = README.read_text()
    for name, body in blocks(rec).items():
        pattern = re.compile(rf"(<!-- fresh-clone:{name} -->\n).*?(\n<!-- /fresh-clone:{name} -->)", re.S)
        if not pattern.search(text):
            sys.exit(f"README.md has no <!-- fresh-clone:{name} --> ... <!-- /fresh-clone:{name} --> block")
        text = pattern.sub(lambda m: m.group(1) + body + m.group(2), text)
    README.write_text(text)
    print(f"README.md updated from the run of commit {rec['commit']} ({RECORD.relative_to(ROOT)})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--apply-only", action="store_true", help="rewrite README from the recorded run; run nothing")
    p.add_argument("--keep", type=Path, default=None, help="clone into this folder (default: a new temporary one)")
    args = p.parse_args()
    if args.apply_only:
        if not RECORD.exists():
            sys.exit(f"no recorded run at {RECORD.relative_to(ROOT)}; run without --apply-only first")
        rec = json.loads(RECORD.read_text())
    else:
        rec = record_run(args.keep)
        RECORD.parent.mkdir(parents=True, exist_ok=True)
        RECORD.write_text(json.dumps(rec, indent=2, ensure_ascii=False) + "\n")
    apply(rec)


if __name__ == "__main__":
    main()
