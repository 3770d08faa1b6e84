"""A grouped bar chart as an inline SVG string, drawn on the server: the console loads no script and no
asset from outside the gateway, and its Content-Security-Policy (``default-src 'self'``) refuses inline
styles, so the chart uses presentation attributes only (``fill``, ``font-size``, ``transform``), never a
``style`` attribute or element.

Pure: text in, text out, no web or database framework. Every text that reaches the SVG (labels, series
names, the title) is escaped; numbers are finite and non-negative or refused (:class:`ValueError`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape

Group = tuple[str, Mapping[str, float]]

#: Okabe-Ito: told apart with every common kind of colour blindness
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")

WIDTH = 1200
HEIGHT = 400
_MARGIN_LEFT = 84
_MARGIN_RIGHT = 16
_MARGIN_TOP = 50
_MARGIN_BOTTOM = 110
_LEVEL_MARGIN_BOTTOM = 36
_TICKS = 5
_LABEL_CHARS = 20
#: the width of a character at the chart's font size, roughly (for the legend and the labels' room)
_CHAR_WIDTH = 7.2


def _text(value: str) -> str:
    """Escaped for XML text and attribute values alike (``& < > " '``)."""
    return escape(value, quote=True)


def _number(value: float) -> str:
    """A figure as a person reads it: integers with ``.`` between thousands (Vietnamese usage), at most one
    decimal otherwise; beyond a trillion in scientific notation, so that a label keeps its width."""
    if value >= 1e12:
        return f"{value:.2e}"
    if float(value).is_integer():
        return f"{int(value):,}".replace(",", ".")
    return f"{value:,.1f}".replace(",", " ").replace(".", ",").replace(" ", ".")


def _raw(value: float) -> str:
    """A value exactly, for machines (``data-value``)."""
    return str(int(value)) if value.is_integer() and value < 1e15 else repr(value)


def _coordinate(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 times 10^k that is at least ``value`` (1 for nothing above zero): the top of
    the axis, so that its ticks fall on round numbers."""
    if value <= 0:
        return 1.0
    exponent = math.floor(math.log10(value))
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        try:
            candidate = step * 10.0**exponent
        except OverflowError:
            return value
        if not math.isfinite(candidate):
            return value
        if candidate >= value:
            return candidate
    return value  # pragma: no cover - 10 times 10^k is always reached


def _short(label: str) -> str:
    return label if len(label) <= _LABEL_CHARS else label[: _LABEL_CHARS - 1].rstrip() + "…"


def _checked(groups: Sequence[Group]) -> None:
    for label, values in groups:
        for name, value in values.items():
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{label!r} / {name!r}: a chart value must be finite and non-negative")


def grouped_bar_chart(
    groups: Sequence[Group],
    *,
    title: str,
    series: Sequence[str] | None = None,
    description: str = "",
    element_id: str = "chart",
    empty_text: str = "Không có số liệu",
) -> str:
    """An SVG (one ``<svg>`` element, well-formed XML) of one group of bars per ``(label, {series: value})``.

    ``series`` orders the bars of a group and the legend (default: in the order first seen); a series a group
    lacks counts 0. Bar heights are proportional to the values, on an axis from 0 to :func:`nice_ceiling` of
    the largest. The accessible name is ``title`` (an SVG ``<title>``), each bar carries its own ``<title>``
    (label, series and value) and its ``data-series`` and ``data-value``; long labels are shortened on the
    axis and kept whole in their group's ``<title>``.
    """
    _checked(groups)
    names: list[str] = list(series) if series is not None else []
    if series is None:
        for _, values in groups:
            names.extend(n for n in values if n not in names)
    colors = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}
    top = nice_ceiling(max((v for _, values in groups for v in values.values()), default=0.0))

    plot_w = WIDTH - _MARGIN_LEFT - _MARGIN_RIGHT
    slot = plot_w / max(len(groups), 1)
    # labels level under their groups when each fits its slot; else slanted, which needs the taller margin
    level = all(len(_short(label)) * _CHAR_WIDTH <= slot * 0.95 for label, _ in groups)
    height = HEIGHT - (_MARGIN_BOTTOM - _LEVEL_MARGIN_BOTTOM if level else 0)
    plot_h = HEIGHT - _MARGIN_TOP - _MARGIN_BOTTOM
    base_y = _MARGIN_TOP + plot_h
    title_id, desc_id = f"{element_id}-title", f"{element_id}-desc"
    out: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" id="{_text(element_id)}" viewBox="0 0 {WIDTH} {height}" '
        f'width="100%" preserveAspectRatio="xMidYMid meet" role="img" '
        f'aria-labelledby="{_text(title_id)} {_text(desc_id)}" font-family="sans-serif" font-size="13">',
        f'<title id="{_text(title_id)}">{_text(title)}</title>',
        f'<desc id="{_text(desc_id)}">{_text(description)}</desc>',
        f'<rect x="0" y="0" width="{WIDTH}" height="{height}" fill="#ffffff"/>',
    ]

    # the value axis: gridlines and labels at round numbers
    out.append('<g class="axis y-axis" fill="#333333" text-anchor="end">')
    for i in range(_TICKS + 1):
        value = top / _TICKS * i
        y = base_y - plot_h * i / _TICKS
        out.append(f'<line x1="{_MARGIN_LEFT}" x2="{WIDTH - _MARGIN_RIGHT}" y1="{_coordinate(y)}" '
                   f'y2="{_coordinate(y)}" stroke="{"#333333" if i == 0 else "#dddddd"}" stroke-width="1"/>')
        out.append(f'<text x="{_MARGIN_LEFT - 8}" y="{_coordinate(y + 4)}">{_text(_number(value))}</text>')
    out.append(f'<line x1="{_MARGIN_LEFT}" x2="{_MARGIN_LEFT}" y1="{_MARGIN_TOP}" y2="{base_y}" '
               f'stroke="#333333" stroke-width="1"/>')
    out.append("</g>")

    # the legend, above the plot
    out.append('<g class="legend" fill="#333333">')
    x = float(_MARGIN_LEFT)
    for name in names:
        out.append(f'<rect x="{_coordinate(x)}" y="18" width="14" height="14" fill="{colors[name]}"/>')
        out.append(f'<text x="{_coordinate(x + 20)}" y="30">{_text(name)}</text>')
        x += 20 + _CHAR_WIDTH * len(name) + 24
    out.append("</g>")

    if not groups or not names:
        out.append(f'<text class="empty" x="{WIDTH // 2}" y="{_coordinate(_MARGIN_TOP + plot_h / 2)}" '
                   f'text-anchor="middle" fill="#666666" font-size="16">{_text(empty_text)}</text>')
        out.append("</svg>")
        return "".join(out)

    bar_w = slot * 0.8 / len(names)
    for index, (label, values) in enumerate(groups):
        left = _MARGIN_LEFT + slot * index + slot * 0.1
        out.append(f'<g class="group" data-label="{_text(label)}"><title>{_text(label)}</title>')
        for k, name in enumerate(names):
            value = float(values.get(name, 0.0))
            bar_h = plot_h * (value / top)  # divided first: plot_h * value may overflow
            bx, by = left + bar_w * k, base_y - bar_h
            out.append(
                f'<rect class="bar" x="{_coordinate(bx)}" y="{_coordinate(by)}" width="{_coordinate(bar_w)}" '
                f'height="{_coordinate(bar_h)}" fill="{colors[name]}" data-series="{_text(name)}" '
                f'data-value="{_raw(value)}"><title>{_text(f"{label} — {name}: {_number(value)}")}'
                "</title></rect>"
            )
        short = _short(label)
        cx, ly = left + slot * 0.4, base_y + 18
        if level:
            out.append(f'<text class="label" x="{_coordinate(cx)}" y="{_coordinate(ly)}" text-anchor="middle" '
                       f'fill="#333333">{_text(short)}</text>')
        else:  # slanted, so that neighbours do not overlap
            out.append(f'<text class="label" x="{_coordinate(cx)}" y="{_coordinate(ly)}" text-anchor="end" '
                       f'transform="rotate(-35 {_coordinate(cx)} {_coordinate(ly)})" fill="#333333">'
                       f"{_text(short)}</text>")
        out.append("</g>")
    out.append("</svg>")
    return "".join(out)
