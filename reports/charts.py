"""Server-side SVG charts (no chart library, no JavaScript): donuts, stacked bars and horizontal bar lists.

Every function returns safe HTML built with ``format_html`` only, so labels and URLs are escaped. A segment with a
URL is a link (``<a href>`` inside the SVG), so every coloured arc or bar can be clicked like the numbers beside
it; each carries a ``<title>`` tooltip and the chart an ``aria-label`` that says the same in words.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

# Fluent status colours (the same as console.css --ok/--err/--conflict/--na/--pending).
COLORS = {
    "succeeded": "#107c10",
    "error": "#d13438",
    "conflict": "#ca5010",
    "not_applicable": "#a19f9d",
    "pending": "#8764b8",
}
EMPTY = "#edebe9"
# Categorical palette for non-status charts (platforms, policy types).
PALETTE = ("#0078d4", "#8764b8", "#00b7c3", "#ca5010", "#498205", "#c239b3", "#4f6bed", "#986f0b")


@dataclass(frozen=True)
class Segment:
    label: str
    value: int
    color: str
    url: str = ""
    key: str = ""  # a machine name (status value, OS) for tests and data-* attributes


def _pct(value: int, total: int) -> str:
    if not total:
        return "0%"
    share = 100.0 * value / total
    if 0 < share < 1:
        return "<1%"
    return f"{share:.0f}%"


def _zero(segment: Segment) -> SafeString:
    return mark_safe(' class="count-zero"' if not segment.value else "")  # a constant


def _tip(segment: Segment, total: int) -> str:
    return f"{segment.label}: {segment.value:,} ({_pct(segment.value, total)})"


def donut(
    segments: Sequence[Segment],
    *,
    size: int = 168,
    thickness: int = 24,
    center_value: str | None = None,
    center_label: str = "",
    title: str = "",
) -> SafeString:
    """A donut chart: one arc per non-zero segment, clockwise from 12 o'clock, the total in the middle."""
    total = sum(max(s.value, 0) for s in segments)
    radius = (size - thickness) / 2
    circumference = 2 * math.pi * radius
    c = size / 2
    parts: list[SafeString] = [
        format_html(
            '<circle cx="{}" cy="{}" r="{}" fill="none" stroke="{}" stroke-width="{}"/>',
            c,
            c,
            f"{radius:.2f}",
            EMPTY,
            thickness,
        )
    ]
    offset = 0.0
    gap = 1.2 if sum(1 for s in segments if s.value > 0) > 1 else 0.0  # a hairline between arcs
    for segment in segments:
        if segment.value <= 0 or not total:
            continue
        length = circumference * segment.value / total
        visible = max(length - gap, 0.6)
        arc = format_html(
            '<circle class="arc" cx="{}" cy="{}" r="{}" fill="none" stroke="{}" stroke-width="{}" '
            'stroke-dasharray="{} {}" stroke-dashoffset="{}" transform="rotate(-90 {} {})" data-key="{}">'
            "<title>{}</title></circle>",
            c,
            c,
            f"{radius:.2f}",
            segment.color,
            thickness,
            f"{visible:.3f}",
            f"{circumference - visible:.3f}",
            f"{-offset:.3f}",
            c,
            c,
            segment.key,
            _tip(segment, total),
        )
        if segment.url:
            arc = format_html('<a href="{}" aria-label="{}">{}</a>', segment.url, _tip(segment, total), arc)
        parts.append(arc)
        offset += length
    shown = center_value if center_value is not None else f"{total:,}"
    # The total must fit inside the ring: smaller type for long numbers (439,637) and small donuts.
    inner = 2 * (radius - thickness / 2) - 12
    font = min(26, max(12, int(inner / (0.62 * max(len(shown), 1)))))
    parts.append(
        format_html(
            '<text x="{}" y="{}" text-anchor="middle" class="donut-total" style="font-size:{}px">{}</text>',
            c,
            f"{c + (2 if center_label else font / 3):.0f}",
            font,
            shown,
        )
    )
    if center_label:
        parts.append(
            format_html(
                '<text x="{}" y="{}" text-anchor="middle" class="donut-caption">{}</text>',
                c,
                c + 20,
                center_label,
            )
        )
    words = "; ".join(_tip(s, total) for s in segments) or "no data"
    return format_html(
        '<svg class="chart donut" width="{}" height="{}" viewBox="0 0 {} {}" role="img" aria-label="{}">{}</svg>',
        size,
        size,
        size,
        size,
        f"{title}: {words}" if title else words,
        mark_safe("".join(parts)),  # every part was built with format_html
    )


def stacked_bar(
    segments: Sequence[Segment], *, width: int = 240, height: int = 10, title: str = ""
) -> SafeString:
    """One horizontal bar split by segment (a policy's device statuses at a glance).

    Built with plain string formatting and ``escape`` (it is drawn once per table row, so format_html's
    overhead would show on a 200-row page)."""
    total = sum(max(s.value, 0) for s in segments)
    parts = [f'<rect x="0" y="0" width="{width}" height="{height}" rx="2" fill="{EMPTY}"/>']
    x = 0.0
    for segment in segments:
        if segment.value <= 0 or not total:
            continue
        w = width * segment.value / total
        tip = escape(_tip(segment, total))
        rect = (
            f'<rect x="{x:.2f}" y="0" width="{max(w, 1.5):.2f}" height="{height}" fill="{escape(segment.color)}" '
            f'data-key="{escape(segment.key)}"><title>{tip}</title></rect>'
        )
        if segment.url:
            rect = f'<a href="{escape(segment.url)}" aria-label="{tip}">{rect}</a>'
        parts.append(rect)
        x += w
    words = "; ".join(_tip(s, total) for s in segments if s.value) or "no data"
    label = escape(f"{title}: {words}" if title else words)
    return mark_safe(  # every interpolated text is escaped above
        f'<svg class="chart bar" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'preserveAspectRatio="none" role="img" aria-label="{label}">{"".join(parts)}</svg>'
    )


def bar_list(segments: Sequence[Segment], *, title: str = "") -> SafeString:
    """Horizontal bars, one row each: label with the (linked) number and share, and below it a bar scaled to the
    largest value. HTML rows with an inline SVG bar each, so long labels wrap and the numbers line up.
    """
    largest = max((s.value for s in segments), default=0)
    total = sum(s.value for s in segments)
    rows = []
    for segment in segments:
        width = 0.0 if not largest else 100.0 * segment.value / largest
        bar = format_html(
            '<svg class="chart hbar" viewBox="0 0 100 8" preserveAspectRatio="none" aria-hidden="true">'
            '<rect x="0" y="0" width="100" height="8" rx="1.5" fill="{}"/>'
            '<rect x="0" y="0" width="{}" height="8" rx="1.5" fill="{}"/></svg>',
            EMPTY,
            f"{max(width, 0.8) if segment.value else 0:.2f}",
            segment.color,
        )
        number = (  # every group links, even an empty one (the list it opens says so)
            format_html('<a href="{}"{}>{}</a>', segment.url, _zero(segment), f"{segment.value:,}")
            if segment.url
            else format_html("<span{}>{}</span>", _zero(segment), f"{segment.value:,}")
        )
        rows.append(
            (
                segment.key,
                segment.color,
                segment.label,
                bar,
                number,
                _pct(segment.value, total),
            )
        )
    body = format_html_join(
        "",
        '<li data-key="{}"><span class="sw" style="background:{}"></span><span class="bl-label">{}</span>'
        '<span class="bl-bar">{}</span><b class="bl-num">{}</b><span class="bl-pct muted small">{}</span></li>',
        rows,
    )
    return format_html('<ul class="barlist" aria-label="{}">{}</ul>', title, body)


def legend(segments: Sequence[Segment]) -> SafeString:
    """The legend beside a donut: colour, label, the (linked) count and its share."""
    total = sum(max(s.value, 0) for s in segments)
    rows = []
    for segment in segments:
        number = (
            format_html(
                '<a href="{}" data-testid="count-{}">{}</a>',
                segment.url,
                segment.key,
                f"{segment.value:,}",
            )
            if segment.url and segment.value
            else format_html(
                '<span data-testid="count-{}"{}>{}</span>', segment.key, _zero(segment), f"{segment.value:,}"
            )
        )
        rows.append((segment.key, segment.color, segment.label, number, _pct(segment.value, total)))
    body = format_html_join(
        "",
        '<li data-key="{}"><span class="sw" style="background:{}"></span><span>{}</span><b>{}</b>'
        '<span class="muted small pct">{}</span></li>',
        rows,
    )
    return format_html('<ul class="legend chart-legend">{}</ul>', body)
