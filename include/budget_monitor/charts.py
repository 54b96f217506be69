"""PNG charts for the self-evaluation: execution vs pace, and per-unit rates.

matplotlib is imported inside the functions (it costs ~1.4 s per process) and
used through the object API on the Agg canvas, so nothing touches pyplot's
global state. The CJK font is looked up once per process.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

# Preferred CJK families, best first. The Noto .ttc registers as "... JP" but
# its Simplified Chinese glyphs are complete.
_CJK_FAMILIES = (
    "Noto Sans CJK SC",
    "Noto Sans CJK JP",
    "Noto Serif CJK SC",
    "Noto Serif CJK JP",
    "Source Han Sans SC",
    "WenQuanYi Zen Hei",
    "SimHei",
    "Microsoft YaHei",
)
_QUARTER_MONTHS = {1: (1, 3), 2: (4, 6), 3: (7, 9), 4: (10, 12)}
_QUARTER_NAMES = {1: "第一季度", 2: "第二季度", 3: "第三季度", 4: "第四季度"}


class ChartError(RuntimeError):
    """A chart cannot be drawn (e.g. no CJK font installed)."""


@lru_cache(maxsize=1)
def cjk_font_family() -> str:
    """The installed CJK font family; raises ChartError when there is none."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import font_manager

    installed = {f.name for f in font_manager.fontManager.ttflist}
    for family in _CJK_FAMILIES:
        if family in installed:
            return family
    for name in sorted(installed):
        if "CJK" in name or "Hei" in name or "Song" in name:
            return name
    raise ChartError(
        "未找到中文字体，无法生成图表：请安装 Noto CJK 字体（如 Debian/Ubuntu 的 fonts-noto-cjk 软件包）"
        "后删除 matplotlib 字体缓存重试。"
    )


def _rc() -> dict[str, Any]:
    return {
        "font.family": "sans-serif",
        "font.sans-serif": [cjk_font_family(), "DejaVu Sans"],
        "axes.unicode_minus": False,
    }


def _save_png(fig: Any, path: Path) -> None:
    """Draw ``fig`` on its Agg canvas and write it as an RGB PNG at zlib level 1.

    By hand rather than ``savefig``: savefig writes RGBA at zlib level 6, and
    that encoding was ~22 % of a chart (a profile of 20 execution charts). The
    charts are opaque (white figure), so RGB loses nothing; RGB at level 1
    encodes in 11 ms instead of 20 and the file is smaller (70 vs 73 KB).
    """
    from PIL import Image

    canvas = fig.canvas
    canvas.draw()
    rgba = Image.frombuffer("RGBA", canvas.get_width_height(physical=True), canvas.buffer_rgba(), "raw", "RGBA", 0, 1)
    rgba.convert("RGB").save(path, format="png", compress_level=1, dpi=(fig.dpi, fig.dpi))


def _figure(width: float, height: float):  # -> matplotlib.figure.Figure
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=150)
    FigureCanvasAgg(fig)
    return fig


class _Frame:
    """A chart's figure and axes, built once per process and redrawn per fund.

    A fresh figure, axes, ticks, labels and legend cost ~30 % of a chart
    (bench/RESULTS.md: one chart per fund per monthly close, two per year
    end), so a frame keeps what never changes (``_build``), and each chart
    only adds its fund's artists inside :meth:`drawing`, which saves the PNG
    and removes them again. The PNG is byte for byte the one a fresh figure
    gives (tests/test_charts.py). The lock keeps two threads from drawing on
    the one figure at once.
    """

    def __init__(self, width: float, height: float) -> None:
        import threading

        import matplotlib

        self.lock = threading.Lock()
        with matplotlib.rc_context(_rc()):
            self.fig = _figure(width, height)
            self.ax = self.fig.add_subplot(1, 1, 1)
            for side in ("top", "right"):
                self.ax.spines[side].set_visible(False)
            self._build(self.ax)

    def _build(self, ax: Any) -> None:
        """Draw the parts every fund's chart shares."""

    @contextmanager
    def drawing(self, path: Path) -> Iterator[list[Any]]:
        """Yield a list for this fund's artists; on a clean exit save ``path``;
        always remove them again."""
        import matplotlib

        with self.lock, matplotlib.rc_context(_rc()):
            added: list[Any] = []
            try:
                yield added
                _save_png(self.fig, path)
            finally:
                for artist in added:
                    artist.remove()


class _ExecutionFrame(_Frame):
    """Axes, month ticks, y label, grid, legend and the two (empty) lines."""

    def __init__(self) -> None:
        super().__init__(7.2, 3.8)

    def _build(self, ax: Any) -> None:
        self.pace_line, = ax.plot([], [], color="#7f7f7f", ls="--", marker="o", ms=3, lw=1.4, label="序时进度")
        self.rate_line, = ax.plot([], [], color="#1f4e9c", marker="o", ms=4, lw=2.0, label="累计执行率")
        ax.set_xticks(range(1, 13), [f"{m}月" for m in range(1, 13)])
        ax.set_xlim(0.5, 12.5)
        ax.set_ylabel("百分比（%）")
        ax.grid(axis="y", color="#dddddd", lw=0.6)
        # Lower right stays clear: both lines rise from bottom left to top right.
        ax.legend(loc="lower right", fontsize=8, frameon=True, framealpha=0.9, edgecolor="none")
        # Fixed margins instead of tight_layout: the layout pass cost as much as
        # the drawing, and these charts have a fixed shape.
        self.fig.subplots_adjust(left=0.085, right=0.985, top=0.9, bottom=0.1)


@lru_cache(maxsize=1)
def _execution_frame() -> _ExecutionFrame:
    return _ExecutionFrame()


def execution_chart(
    monthly: Sequence[Mapping[str, Any]],
    quarters: Sequence[Mapping[str, Any]],
    path: str | Path,
    title: str = "专项资金累计支出进度与序时进度",
) -> Path:
    """Cumulative execution rate vs pace by month; lagging quarters shaded and labelled."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = _execution_frame()
    months = [int(str(m["month"])[-2:]) for m in monthly]
    rates = [float(m["cumulative_rate"]) for m in monthly]
    paces = [float(m["pace"]) for m in monthly]
    top = max([100.0, *rates, *paces]) * 1.12
    with frame.drawing(path) as added:
        ax = frame.ax
        for q in quarters:
            if q.get("lagging"):
                lo, hi = _QUARTER_MONTHS[int(q["quarter"])]
                added.append(ax.axvspan(lo - 0.5, hi + 0.5, color="#f4c7c3", alpha=0.55, lw=0, zorder=0))
                added.append(ax.text((lo + hi) / 2, top * 0.97, f"{_QUARTER_NAMES[int(q['quarter'])]}落后",
                                     ha="center", va="top", fontsize=9, color="#a61b1b"))
        frame.pace_line.set_data(months, paces)
        frame.rate_line.set_data(months, rates)
        for x, y in zip(months, rates):
            below = y > top * 0.08  # labels under the line, except near the x axis
            added.append(ax.annotate(f"{y:.1f}", (x, y), textcoords="offset points",
                                     xytext=(0, -12 if below else 6), ha="center", fontsize=7, color="#1f4e9c"))
        ax.set_ylim(0, top)
        ax.set_title(title, fontsize=11)
    return path


class _UnitFrame(_Frame):
    """Axes, the 100 % line and the x label; the height follows the number of units."""

    def __init__(self) -> None:
        super().__init__(7.2, 2.2)

    def _build(self, ax: Any) -> None:
        ax.axvline(100, color="#7f7f7f", ls="--", lw=1)
        ax.set_xlabel("执行率（%）；红色为有季度支出进度落后的单位")


@lru_cache(maxsize=1)
def _unit_frame() -> _UnitFrame:
    return _UnitFrame()


def unit_chart(
    units: Sequence[Mapping[str, Any]],
    path: str | Path,
    title: str = "各预算单位全年执行率",
) -> Path:
    """Horizontal bars of each unit's execution rate; units with lagging quarters in red."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = _unit_frame()
    names = [str(u["unit"]) for u in units][::-1]
    rates = [float(u["execution_rate"]) for u in units][::-1]
    colors = ["#c0392b" if u.get("lagging_quarters") else "#1f4e9c" for u in units][::-1]
    height = max(2.2, 0.45 * len(units) + 1.2)
    with frame.drawing(path) as added:
        fig, ax = frame.fig, frame.ax
        fig.set_size_inches(7.2, height)
        bars = ax.barh(range(len(names)), rates, color=colors, height=0.6)
        added.append(bars)
        for bar, r in zip(bars, rates):
            added.append(ax.text(bar.get_width() + 1, bar.get_y() + bar.get_height() / 2, f"{r:.2f}%",
                                 va="center", fontsize=8))
        ax.set_yticks(range(len(names)), names, fontsize=8)
        ax.set_xlim(0, max([100.0, *rates]) * 1.15)
        ax.relim()  # the y range from this fund's bars only (the last fund's are gone)
        ax.autoscale_view(scalex=False)
        ax.set_title(title, fontsize=11)
        # Left margin from the longest unit name (8 pt CJK glyphs ≈ 0.115 in each).
        longest = max((len(n) for n in names), default=4)
        left = min(0.5, 0.04 + longest * 0.115 / 7.2)
        fig.subplots_adjust(left=left, right=0.97, top=1 - 0.45 / height, bottom=0.65 / height)
    return path
