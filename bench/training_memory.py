#!/usr/bin/env python3
"""The memory lesson, measured (lab step 7c, scenarios 2 and 3).

Runs two children under the same memory limit (default 512 MiB):
  naive   table.scan().to_pandas() of moderation.large_training_data (the reference's S2)
  stream  the streaming trainer (gourmetgram.training.trainer), 1 epoch

The limit is a cgroup-v1 memory cgroup created under this process's own (like `docker run
--memory=512m`; the kernel OOM-kills the child), or, where no writable memory cgroup exists,
RLIMIT_AS (address space, which over-counts mapped-but-unused memory — noted in the output).

    python bench/training_memory.py --rows 1000000 [--generate] [--limit-mb 512] [--out bench/results]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TABLE = "moderation.large_training_data"


def own_memory_cgroup() -> Path | None:
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            base = Path("/sys/fs/cgroup/memory") / path.lstrip("/")
            if base.is_dir() and os.access(base, os.W_OK):
                return base
    return None


class Limit:
    def __init__(self, limit_mb: int) -> None:
        self.bytes = limit_mb * 2**20
        self.cgroup: Path | None = None
        parent = own_memory_cgroup()
        if parent is not None:
            try:
                cg = parent / f"gg-bench-{os.getpid()}"
                cg.mkdir(exist_ok=True)
                (cg / "memory.limit_in_bytes").write_text(str(self.bytes))
                swap = cg / "memory.memsw.limit_in_bytes"
                if swap.exists():
                    swap.write_text(str(self.bytes))
                self.cgroup = cg
            except OSError:
                self.cgroup = None
        self.method = "cgroup-v1 memory.limit_in_bytes" if self.cgroup else "RLIMIT_AS"

    def preexec(self) -> None:
        if self.cgroup is not None:
            (self.cgroup / "cgroup.procs").write_text(str(os.getpid()))
        else:
            resource.setrlimit(resource.RLIMIT_AS, (self.bytes, self.bytes))

    def reset_peak(self) -> None:
        if self.cgroup is not None:
            (self.cgroup / "memory.max_usage_in_bytes").write_text("0")

    def peak_mb(self) -> float | None:
        if self.cgroup is None:
            return None
        return int((self.cgroup / "memory.max_usage_in_bytes").read_text()) / 2**20

    def close(self) -> None:
        if self.cgroup is not None:
            with contextlib.suppress(OSError):
                self.cgroup.rmdir()


def run_child(limit: Limit, mode: str, timeout: float) -> dict:
    limit.reset_peak()
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, __file__, "--child", mode],
        preexec_fn=limit.preexec,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    out = {"mode": mode, "seconds": round(time.monotonic() - t0, 1), "returncode": proc.returncode}
    if proc.returncode < 0:
        out["outcome"] = f"killed by {signal.Signals(-proc.returncode).name}"
    elif "MemoryError" in proc.stderr:
        out["outcome"] = "MemoryError"
    elif proc.returncode:
        out["outcome"] = "failed"
        out["stderr_tail"] = proc.stderr[-1500:]
    else:
        out["outcome"] = "finished"
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            out.update(json.loads(line[7:]))
    out["cgroup_peak_mb"] = limit.peak_mb()
    return out


def child(mode: str) -> None:
    from gourmetgram.etl.catalog import load_catalog
    from gourmetgram.training import trainer

    table = load_catalog().load_table(TABLE)
    base = trainer.rss_bytes()
    if mode == "naive":
        frame = trainer.load_full(table)
        result = {"rows": len(frame), "frame_mb": round(frame.memory_usage(deep=True).sum() / 2**20, 1)}
    else:
        res = trainer.train_streaming(trainer.batch_source(table), epochs=1)
        trace = [round(x / 2**20, 1) for x in res.rss_trace]
        result = {
            "rows": res.rows_train + res.rows_test,
            "roc_auc": res.metrics["roc_auc"],
            "pr_auc": res.metrics["pr_auc"],
            "rss_trace_mb": trace,
        }
    result["rss_after_imports_mb"] = round(base / 2**20, 1)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print("RESULT " + json.dumps(result), flush=True)


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stream = results["stream"]
    fig, ax = plt.subplots(figsize=(7, 4))
    if "rss_trace_mb" in stream:
        ax.plot(stream["rss_trace_mb"], label=f"streaming trainer (peak {stream['peak_rss_mb']} MiB)")
    ax.axhline(results["limit_mb"], color="red", ls="--", label=f"limit {results['limit_mb']} MiB")
    ax.set(
        xlabel="batch (scaler pass, epoch, evaluation)",
        ylabel="RSS (MiB)",
        title=f"{results['rows']:,} rows: naive to_pandas → {results['naive']['outcome']}",
    )
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", choices=["naive", "stream"])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--generate", action="store_true", help="(re)create the large table with --rows rows")
    parser.add_argument("--limit-mb", type=int, default=512)
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--out", default=str(HERE / "results"))
    args = parser.parse_args()
    if args.child:
        return child(args.child)
    from gourmetgram.etl.catalog import load_catalog
    from gourmetgram.training import large_dataset

    if args.generate:
        t0 = time.monotonic()
        large_dataset.generate(load_catalog(), rows=args.rows, show_progress=False)
        print(f"generated {args.rows:,} rows in {time.monotonic() - t0:.0f} s", flush=True)
    limit = Limit(args.limit_mb)
    try:
        results = {"rows": args.rows, "limit_mb": args.limit_mb, "limit_method": limit.method}
        for mode in ("naive", "stream"):
            results[mode] = run_child(limit, mode, args.timeout)
            brief = {k: v for k, v in results[mode].items() if k != "rss_trace_mb"}
            print(json.dumps(brief), flush=True)
    finally:
        limit.close()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"training_memory_{args.rows}.json").write_text(json.dumps(results, indent=2))
    plot(results, out / f"training_memory_{args.rows}.png")
    print(f"wrote {out}/training_memory_{args.rows}.{{json,png}}")


if __name__ == "__main__":
    main()
