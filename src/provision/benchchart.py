"""`provision bench --chart`: total tokens/s and TTFT p95 against concurrency, as a PNG.

matplotlib (the bench extra) with the Agg backend: no display needed. Without matplotlib the
chart is skipped with a message; the benchmark itself does not need it.
"""

from __future__ import annotations

from pathlib import Path

from provision.bench import INSTALL_FIX, BenchResult


class ChartUnavailable(Exception):
    """matplotlib is not installed."""


def write_chart(result: BenchResult, path: Path) -> Path:
    """Two panels sharing the concurrency axis: total output t/s (top), TTFT p50/p95 (bottom)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ChartUnavailable(f"matplotlib is not installed: {INSTALL_FIX}") from None

    levels = [lv for lv in result.levels if lv.ok]
    xs = [lv.concurrency for lv in levels]
    tps = [lv.total_tps or 0.0 for lv in levels]
    ttft95 = [lv.stat("ttft", 95) or 0.0 for lv in levels]
    ttft50 = [lv.stat("ttft", 50) or 0.0 for lv in levels]

    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(6.4, 5.2), dpi=80)
    try:
        top.plot(xs, tps, marker="o", color="tab:blue")
        top.set_ylabel("total output tokens/s")
        top.set_ylim(0, max(tps, default=0.0) * 1.2 or 1.0)  # headroom for the labels
        top.grid(True, alpha=0.3)
        for x, y in zip(xs, tps, strict=True):
            top.annotate(
                f"{y:,.0f}", (x, y), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8
            )
        bottom.plot(xs, [v * 1000 for v in ttft95], marker="o", color="tab:red", label="TTFT p95")
        bottom.plot(
            xs, [v * 1000 for v in ttft50], marker=".", linestyle="--", color="tab:orange", label="TTFT p50"
        )
        bottom.set_ylabel("time to first token (ms)")
        bottom.set_ylim(bottom=0)
        bottom.grid(True, alpha=0.3)
        bottom.legend(loc="upper left", fontsize=8)
        bottom.set_xlabel("concurrent requests")
        if xs and max(xs) / min(xs) >= 8:
            bottom.set_xscale("log", base=2)
        bottom.set_xticks(xs)
        bottom.set_xticklabels([str(x) for x in xs])
        s = result.settings
        fig.suptitle(
            f"{result.model} @ {result.target.host}\nmax_tokens {s.max_tokens}, streaming chat completions",
            fontsize=10,
        )
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)
    return path
