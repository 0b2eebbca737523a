"""Bar charts drawn on the server as inline SVG: one bar per day, stacked by series, with an
optional limit drawn across. No script draws them and no ``style`` attribute colours them: each
part carries a class that ``static/console.css`` styles (the Content-Security-Policy allows no
inline style). Heights are whole pixels computed from the exact integer amounts."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date

from gateway.console.layout import plain

WIDTH = 720
PLOT_HEIGHT = 200
_TOP = 24  # room above the plot for the limit's label
_BOTTOM = 28  # room below it for the days
PALETTE = 8  # series classes s0 .. s7, reused in turn


@dataclass(frozen=True)
class Series:
    """One stack of the bars: its name (in the legend and each bar's tooltip) and a value per day."""

    name: str
    values: Sequence[int]


def series_class(index: int) -> str:
    """The class of the ``index``-th series' bars and legend swatch."""
    return f"s{index % PALETTE}"


def bar_height(value: int, top: int) -> int:
    """``value``'s bar in whole pixels on a plot whose full height stands for ``top``."""
    return 0 if top <= 0 else value * PLOT_HEIGHT // top


def bar_chart(
    title: str,
    days: Sequence[date],
    series: Sequence[Series],
    label: Callable[[int], str],
    limit: int | None = None,
) -> str:
    """An SVG bar chart: a bar per day in ``days``, stacked by ``series`` (each as long as
    ``days``), the amounts shown by ``label`` in each bar's tooltip; ``limit`` a line across
    (bars are drawn to a scale that shows both). ``title`` names the chart for screen readers."""
    if any(len(s.values) != len(days) for s in series):
        raise ValueError("bar_chart: every series has one value per day")
    totals = [sum(s.values[i] for s in series) for i in range(len(days))]
    top = max([*totals, limit or 0, 1])
    step = WIDTH // max(len(days), 1)
    width = max(step - 4, 2)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {_TOP + PLOT_HEIGHT + _BOTTOM}" role="img" '
        f'aria-label="{plain(title)}"><title>{plain(title)}</title>',
        f'<line class="axis" x1="0" y1="{_TOP + PLOT_HEIGHT}" x2="{WIDTH}" y2="{_TOP + PLOT_HEIGHT}"/>',
    ]
    labelled_every = max(1, len(days) // 10)
    for i, day in enumerate(days):
        x, floor = i * step + 2, _TOP + PLOT_HEIGHT
        over = limit is not None and totals[i] > limit
        for k, s in enumerate(series):
            if s.values[i] == 0:
                continue
            height = max(bar_height(s.values[i], top), 1)  # a spend too small to see still shows
            floor -= height
            parts.append(
                f'<rect class="bar {series_class(k)}{" over" if over else ""}" x="{x}" y="{floor}" '
                f'width="{width}" height="{height}"><title>{plain(day.isoformat())} · {plain(s.name)}: '
                f"{plain(label(s.values[i]))}</title></rect>"
            )
        if i % labelled_every == 0:
            parts.append(
                f'<text class="day" x="{x + width // 2}" y="{_TOP + PLOT_HEIGHT + 18}">{plain(day.strftime("%m-%d"))}</text>'
            )
    # The scale: what the plot's full height stands for.
    parts.append(f'<text class="scale" x="{WIDTH - 4}" y="{_TOP - 8}">top {plain(label(top))}</text>')
    if limit is not None:
        y = _TOP + PLOT_HEIGHT - bar_height(limit, top)
        parts.append(f'<line class="limit" x1="0" y1="{y}" x2="{WIDTH}" y2="{y}"/>')
        parts.append(f'<text class="limit" x="4" y="{y - 6}">limit {plain(label(limit))}</text>')
    parts.append("</svg>")
    return "".join(parts)


def legend(series: Sequence[Series]) -> str:
    """The series' names beside swatches of their bars' classes, as HTML."""
    items = "".join(
        f'<li><svg class="swatch" viewBox="0 0 10 10"><rect class="{series_class(k)}" width="10" height="10"/></svg>'
        f"{plain(s.name)}</li>"
        for k, s in enumerate(series)
    )
    return f'<ul class="legend">{items}</ul>'
