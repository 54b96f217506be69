"""PNG charts for the self-evaluation: execution vs pace, and per-unit rates.

matplotlib is imported inside the functions (it costs ~1.4 s per process) and
used through the object API on the Agg canvas, so nothing touches pyplot's
global state. The CJK font is looked up once per process.
"""

from __future__ import annotations

import io
from collections import OrderedDict
from collections.abc import Hashable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import lru_cache
from operator import attrgetter
from pathlib import Path
from typing import Any

from budget_monitor.periods import QUARTER_ZH

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
# The title sits on the axes' top edge. Given explicitly, matplotlib skips its
# automatic title placement, which measures every tick label of both axes on
# each draw (~5 ms a chart) only to find nothing above the axes: these charts
# have no top tick labels and no offset text, so the auto position is 1.0 too.
_TITLE_Y = 1.0


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
    """Write ``fig``'s drawn Agg canvas as an RGB PNG at zlib level 1, atomically
    (a full disk leaves no truncated PNG and no temporary file).

    By hand rather than ``savefig``: savefig draws again and writes RGBA at
    zlib level 6, and that encoding was ~22 % of a chart (a profile of 20
    execution charts). The charts are opaque (white figure), so RGB loses
    nothing; RGB at level 1 encodes in 11 ms instead of 20 and the file is
    smaller (70 vs 73 KB).
    """
    from PIL import Image

    from budget_monitor import atomic

    canvas = fig.canvas
    rgba = Image.frombuffer("RGBA", canvas.get_width_height(physical=True), canvas.buffer_rgba(), "raw", "RGBA", 0, 1)
    buf = io.BytesIO()  # encoded in memory, then written whole (atomic.py says why)
    rgba.convert("RGB").save(buf, format="png", compress_level=1, dpi=(fig.dpi, fig.dpi))
    atomic.write_bytes(path, buf.getvalue())


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

    A frame with ``foreground_z`` also keeps backgrounds: the pixels of
    everything drawn below that z-order (figure, axes patch, ticks, tick
    labels, grid, and whatever the fund adds down there), keyed by what
    decides them (the caller's ``background`` key). A chart whose key was
    seen restores those pixels and draws only the artists from
    ``foreground_z`` up, in the order ``Axes.draw`` would: the same draw
    calls onto the same pixels, so the same PNG (tests compare with a full
    draw), without laying out and rasterising ~20 tick labels again.
    """

    foreground_z: float | None = None
    _BACKGROUNDS = 16  # 1080 x 570 RGBA = 2.4 MB each

    def __init__(self, width: float, height: float) -> None:
        import threading

        import matplotlib

        self.lock = threading.Lock()
        self._backgrounds: OrderedDict[Hashable, Any] = OrderedDict()
        with matplotlib.rc_context(_rc()):
            self.fig = _figure(width, height)
            self.ax = self.fig.add_subplot(1, 1, 1)
            for side in ("top", "right"):
                self.ax.spines[side].set_visible(False)
            self._build(self.ax)
        if self.foreground_z is not None:
            self._check_plain()

    def _check_plain(self) -> None:
        """What :meth:`_draw` leaves out of Figure.draw / Axes.draw must be absent."""
        fig, ax = self.fig, self.ax
        plain = (
            fig.get_layout_engine() is None
            and fig.axes == [ax]
            and not fig.images
            and ax.axison
            and ax.get_frame_on()
            and ax.get_axes_locator() is None
            and ax.get_rasterization_zorder() is None
            and not ax.images
            and not any(a.get_animated() or a.get_rasterized() for a in ax.get_children())
        )
        if not plain:
            raise RuntimeError(f"{type(self).__name__}: kept backgrounds need one plain axes (see _Frame._draw)")

    def _build(self, ax: Any) -> None:
        """Draw the parts every fund's chart shares."""

    @contextmanager
    def drawing(self, path: Path, background: Hashable | None = None) -> Iterator[list[Any]]:
        """Yield a list for this fund's artists; on a clean exit draw and save
        ``path``; always remove them again. ``background``: the key of what this
        chart draws below ``foreground_z`` (None: draw everything)."""
        import matplotlib

        with self.lock, matplotlib.rc_context(_rc()):
            added: list[Any] = []
            try:
                yield added
                self._draw(background)
                _save_png(self.fig, path)
            finally:
                for artist in added:
                    artist.remove()

    def _draw(self, background: Hashable | None) -> None:
        if background is None or self.foreground_z is None:
            self.fig.canvas.draw()
            return
        # By hand because matplotlib's blitting API (copy_from_bbox /
        # restore_region / draw_artist) leaves the drawing order to the caller:
        # this is Figure.draw + Axes.draw for our one plain axes (no layout
        # engine, images, rasterisation or animated artists: _check_plain).
        fig, ax = self.fig, self.ax
        renderer = fig.canvas.get_renderer()
        ax.viewLim  # noqa: B018 -- applies any pending autoscale, as Axes.draw does first
        ax.apply_aspect()
        children = [a for a in ax.get_children() if a is not ax.patch]
        artists = sorted(children, key=attrgetter("zorder"))  # stable, as Axes.draw sorts
        split = next((i for i, a in enumerate(artists) if a.zorder >= self.foreground_z), len(artists))
        kept = self._backgrounds.get(background)
        if kept is None:
            renderer.clear()
            fig.patch.draw(renderer)
            ax.patch.draw(renderer)
            for artist in artists[:split]:
                artist.draw(renderer)
            self._backgrounds[background] = (split, renderer.copy_from_bbox(fig.bbox))
            if len(self._backgrounds) > self._BACKGROUNDS:
                self._backgrounds.popitem(last=False)
        else:
            if kept[0] != split:  # an artist below foreground_z that the key does not account for
                raise RuntimeError(
                    f"{type(self).__name__}: background key {background!r} no longer decides "
                    f"what is drawn below z-order {self.foreground_z}"
                )
            self._backgrounds.move_to_end(background)
            renderer.restore_region(kept[1])
        for artist in artists[split:]:
            artist.draw(renderer)
        fig.stale = False


class _ExecutionFrame(_Frame):
    """Axes, month ticks, y label, grid, legend and the two (empty) lines.

    Background (below the lines' z-order 2): axes, grid, both axes' ticks and
    labels, the lagging quarters' shading; decided by the y range and which
    quarters lag, the key :func:`execution_chart` passes. Most funds share a
    few (y up to 112 %, 16 combinations of quarters).
    """

    foreground_z = 2.0

    def __init__(self) -> None:
        super().__init__(7.2, 3.8)

    def _build(self, ax: Any) -> None:
        (self.pace_line,) = ax.plot([], [], color="#7f7f7f", ls="--", marker="o", ms=3, lw=1.4, label="序时进度")
        (self.rate_line,) = ax.plot([], [], color="#1f4e9c", marker="o", ms=4, lw=2.0, label="累计执行率")
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
    lagging = tuple(int(q["quarter"]) for q in quarters if q.get("lagging"))
    with frame.drawing(path, background=(top, lagging)) as added:
        ax = frame.ax
        for quarter in lagging:
            lo, hi = _QUARTER_MONTHS[quarter]
            added.append(ax.axvspan(lo - 0.5, hi + 0.5, color="#f4c7c3", alpha=0.55, lw=0, zorder=0))
            added.append(
                ax.text(
                    (lo + hi) / 2,
                    top * 0.97,
                    f"{QUARTER_ZH[quarter]}落后",
                    ha="center",
                    va="top",
                    fontsize=9,
                    color="#a61b1b",
                )
            )
        frame.pace_line.set_data(months, paces)
        frame.rate_line.set_data(months, rates)
        for x, y in zip(months, rates):
            below = y > top * 0.08  # labels under the line, except near the x axis
            added.append(
                ax.annotate(
                    f"{y:.1f}",
                    (x, y),
                    textcoords="offset points",
                    xytext=(0, -12 if below else 6),
                    ha="center",
                    fontsize=7,
                    color="#1f4e9c",
                )
            )
        ax.set_ylim(0, top)
        ax.set_title(title, fontsize=11, y=_TITLE_Y)
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
            added.append(
                ax.text(bar.get_width() + 1, bar.get_y() + bar.get_height() / 2, f"{r:.2f}%", va="center", fontsize=8)
            )
        ax.set_yticks(range(len(names)), names, fontsize=8)
        ax.set_xlim(0, max([100.0, *rates]) * 1.15)
        ax.relim()  # the y range from this fund's bars only (the last fund's are gone)
        ax.autoscale_view(scalex=False)
        ax.set_title(title, fontsize=11, y=_TITLE_Y)
        # Left margin from the longest unit name (8 pt CJK glyphs ≈ 0.115 in each).
        longest = max((len(n) for n in names), default=4)
        left = min(0.5, 0.04 + longest * 0.115 / 7.2)
        fig.subplots_adjust(left=left, right=0.97, top=1 - 0.45 / height, bottom=0.65 / height)
    return path
