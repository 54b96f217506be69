"""PNG charts with a CJK font (charts.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from budget_monitor import charts
from budget_monitor.charts import ChartError, cjk_font_family, execution_chart, unit_chart

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def monthly(rates: list[float]) -> list[dict]:
    return [
        {"month": f"2021-{m:02d}", "cumulative_rate": r, "pace": round(m / 12 * 100, 2)}
        for m, r in enumerate(rates, start=1)
    ]


def quarters(*lagging: int) -> list[dict]:
    return [{"quarter": q, "lagging": q in lagging} for q in range(1, 5)]


def test_cjk_font_is_found():
    assert "CJK" in cjk_font_family() or "Hei" in cjk_font_family()


def test_execution_chart_is_a_png_with_lagging_quarters_marked(tmp_path: Path, monkeypatch):
    seen: list[str] = []
    original = charts._save_png

    def spy(fig, path):
        seen.extend(t.get_text() for ax in fig.axes for t in ax.texts)
        seen.extend(t.get_text() for ax in fig.axes for t in ax.get_legend().get_texts())
        return original(fig, path)

    monkeypatch.setattr(charts, "_save_png", spy)
    path = execution_chart(
        monthly([4, 12, 26, 30, 35, 38.2, 45, 55, 70, 85, 95, 100]), quarters(2, 3), tmp_path / "执行进度.png"
    )
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert "第二季度落后" in seen and "第三季度落后" in seen and "第一季度落后" not in seen
    assert "序时进度" in seen and "累计执行率" in seen


def test_execution_chart_partial_year(tmp_path: Path):
    path = execution_chart(monthly([5, 10, 20]), quarters(1), tmp_path / "c.png")
    assert path.stat().st_size > 1000


def test_execution_chart_reuses_its_frame_without_carrying_a_fund_over(tmp_path: Path):
    """The figure is built once per process: a chart drawn after another fund's
    (over 100 %, other quarters behind, other title) is byte for byte the
    chart a fresh figure draws, and the first fund's artists are gone."""
    b_args = (monthly([5, 12, 20, 30, 40, 50, 58, 66, 75, 83, 92, 100]), quarters(3))
    charts._execution_frame.cache_clear()
    fresh = execution_chart(*b_args, tmp_path / "fresh.png", title="乙资金").read_bytes()
    execution_chart(monthly([30, 60, 90, 120, 130]), quarters(1, 2), tmp_path / "a.png", title="甲资金")
    frame = charts._execution_frame()
    after = execution_chart(*b_args, tmp_path / "after.png", title="乙资金").read_bytes()
    assert after == fresh
    assert not frame.ax.texts and len(frame.ax.patches) == 0 and frame.ax.get_title() == "乙资金"


def test_execution_chart_from_a_kept_background_is_the_full_draw(tmp_path: Path, monkeypatch):
    """Charts drawn over a kept background (same y range and lagging quarters
    as an earlier fund) are byte for byte what a full draw of the figure gives,
    whether the background was just made or restored, and old ones are dropped."""
    funds = [
        (monthly([4, 12, 26, 30, 35, 38.2, 45, 55, 70, 85, 95, 100]), quarters(2, 3), "甲"),
        (monthly([0, 0, 0, 10, 20, 30, 40, 50, 60, 70, 80, 90]), quarters(2, 3), "乙"),  # same key
        (monthly([9, 18, 27, 36, 45, 54, 63, 72, 81, 90, 99, 100]), quarters(), "丙"),
        (monthly([30, 60, 90, 120, 130]), quarters(1, 2), "丁"),  # another y range
        (monthly([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]), quarters(1, 2, 3, 4), "戊"),
        (monthly([4, 12, 26, 30, 35, 38.2, 45, 55, 70, 85, 95, 100]), quarters(2, 3), "甲"),  # evicted, made again
    ]
    charts._execution_frame.cache_clear()
    frame = charts._execution_frame()
    monkeypatch.setattr(frame, "_BACKGROUNDS", 2)
    kept = []
    for n, (m, q, title) in enumerate(funds):
        kept.append(execution_chart(m, q, tmp_path / f"kept{n}.png", title=title).read_bytes())
        assert len(frame._backgrounds) <= 2
    monkeypatch.setattr(frame, "foreground_z", None)  # every chart a full Figure.draw
    full = [execution_chart(m, q, tmp_path / f"full{n}.png", title=t).read_bytes() for n, (m, q, t) in enumerate(funds)]
    assert kept == full
    assert kept[0] != kept[1] and kept[0] == kept[5]


def test_a_background_key_that_misses_an_artist_below_the_lines_is_an_error(tmp_path: Path):
    """Kept pixels are only reused when the key still decides what lies below the
    lines: one more shaded span under the same key must not reuse them silently."""
    charts._execution_frame.cache_clear()
    frame = charts._execution_frame()
    with frame.drawing(tmp_path / "one.png", background="k") as added:
        added.append(frame.ax.axvspan(1, 2, zorder=0))
    with pytest.raises(RuntimeError, match="no longer decides"):
        with frame.drawing(tmp_path / "two.png", background="k") as added:
            added.extend([frame.ax.axvspan(1, 2, zorder=0), frame.ax.axvspan(3, 4, zorder=0)])
    assert not frame.ax.patches  # removed again after the error
    charts._execution_frame.cache_clear()


def test_unit_chart_is_a_png(tmp_path: Path):
    units = [
        {"unit": "江门市市场监督管理局", "execution_rate": 100.0, "lagging_quarters": []},
        {"unit": "台山市市场监督管理局", "execution_rate": 88.5, "lagging_quarters": [2]},
    ]
    path = unit_chart(units, tmp_path / "单位执行率.png")
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_unit_chart_reuses_its_frame_without_carrying_a_fund_over(tmp_path: Path):
    two = [
        {"unit": "江门市市场监督管理局", "execution_rate": 100.0, "lagging_quarters": []},
        {"unit": "台山市市场监督管理局", "execution_rate": 88.5, "lagging_quarters": [2]},
    ]
    five = [
        {
            "unit": f"第{n}预算单位（很长的单位名称用于测试左边距）",
            "execution_rate": 40.0 + 30 * n,
            "lagging_quarters": [n] if n % 2 else [],
        }
        for n in range(1, 6)
    ]
    charts._unit_frame.cache_clear()
    fresh = unit_chart(two, tmp_path / "fresh.png", title="乙").read_bytes()
    unit_chart(five, tmp_path / "five.png", title="甲")
    after = unit_chart(two, tmp_path / "after.png", title="乙").read_bytes()
    assert after == fresh
    assert not charts._unit_frame().ax.texts


def test_chart_renders_chinese_without_missing_glyph_warnings(tmp_path: Path, recwarn):
    execution_chart(monthly([10] * 12), quarters(), tmp_path / "c.png")
    assert not [w for w in recwarn if "missing from font" in str(w.message) or "Glyph" in str(w.message)]


def test_no_cjk_font_is_a_clear_error(monkeypatch):
    from matplotlib import font_manager

    cjk_font_family.cache_clear()
    monkeypatch.setattr(charts, "_CJK_FAMILIES", ())
    monkeypatch.setattr(
        font_manager.fontManager,
        "ttflist",
        [
            f
            for f in font_manager.fontManager.ttflist
            if "CJK" not in f.name and "Hei" not in f.name and "Song" not in f.name
        ],
    )
    try:
        with pytest.raises(ChartError) as exc:
            cjk_font_family()
        assert "中文字体" in str(exc.value)
    finally:
        cjk_font_family.cache_clear()
