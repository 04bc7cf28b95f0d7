"""Server-side SVG charts: arcs and bars proportional to the values, every segment a link with a tooltip, labels
escaped, an empty chart still drawn."""

from __future__ import annotations

import math
import re

from reports import charts
from reports.charts import Segment


def _arcs(svg: str) -> list[tuple[float, float]]:
    return [(float(a), float(b)) for a, b in re.findall(r'stroke-dasharray="([\d.]+) ([\d.]+)"', svg)]


def test_a_donut_draws_one_arc_per_nonzero_segment_in_proportion():
    svg = str(
        charts.donut(
            [
                Segment("Succeeded", 75, "#107c10", "/s", "succeeded"),
                Segment("Error", 25, "#d13438", "/e", "error"),
                Segment("Conflict", 0, "#ca5010", "/c", "conflict"),
            ],
            size=168,
            thickness=24,
        )
    )
    arcs = _arcs(svg)
    assert len(arcs) == 2
    circumference = 2 * math.pi * (168 - 24) / 2
    for visible, rest in arcs:
        assert math.isclose(visible + rest, circumference, rel_tol=1e-3)
    assert math.isclose(arcs[0][0] / arcs[1][0], 3.0, rel_tol=0.05)  # 75:25, less the hairline gaps
    assert '<a href="/s" aria-label="Succeeded: 75 (75%)">' in svg
    assert "<title>Error: 25 (25%)</title>" in svg
    assert 'data-key="conflict"' not in svg  # nothing drawn for zero
    assert ">100</text>" in svg  # the total in the middle


def test_an_empty_donut_is_a_grey_ring_with_zero():
    svg = str(charts.donut([Segment("Succeeded", 0, "#107c10")], center_label="devices"))
    assert _arcs(svg) == []
    assert charts.EMPTY in svg and ">0</text>" in svg and "devices" in svg


def test_labels_and_urls_are_escaped():
    evil = Segment('<script>alert("x")</script>', 3, "#000", '/x?a=1&b="2"', "k")
    for chart in (
        charts.donut([evil]),
        charts.stacked_bar([evil]),
        charts.bar_list([evil]),
        charts.legend([evil]),
    ):
        html = str(chart)
        assert "<script>" not in html
        assert "&lt;script&gt;" in html


def test_a_stacked_bar_splits_its_width_by_value_and_links_each_part():
    svg = str(
        charts.stacked_bar(
            [Segment("A", 1, "#111", "/a", "a"), Segment("B", 3, "#222", "/b", "b"), Segment("C", 0, "#333")],
            width=200,
        )
    )
    widths = [
        float(w) for w in re.findall(r'<rect x="[\d.]+" y="0" width="([\d.]+)" height="10" fill="#', svg)
    ]
    assert widths == [50.0, 150.0]
    assert '<a href="/a"' in svg and '<a href="/b"' in svg
    assert 'data-key="c"' not in svg


def test_a_bar_list_scales_to_the_largest_value_and_links_the_numbers():
    html = str(
        charts.bar_list(
            [
                Segment("Success", 1200, "#107c10", "/ok", "ok"),
                Segment("Tenant mismatch", 300, "#d13438", "", "tm"),
            ]
        )
    )
    assert '<a href="/ok">1,200</a>' in html
    assert re.search(r'width="100\.00" height="8" rx="1.5" fill="#107c10"', html)
    assert re.search(r'width="25\.00" height="8" rx="1.5" fill="#d13438"', html)
    assert "80%" in html and "20%" in html
