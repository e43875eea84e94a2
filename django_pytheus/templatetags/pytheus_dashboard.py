"""Template tags of the admin metrics dashboard.

``{% pytheus_chart chart %}`` writes a bucket chart (:class:`~django_pytheus.dashboard.Chart`)
as inline SVG. A page holds up to 200 of them, 13 bars each: written here with
``format_html`` (every text escaped) they cost a tenth of what the same markup costs as
template nodes.
"""

from __future__ import annotations

from django import template
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from django_pytheus.dashboard import Chart

register = template.Library()

_BAR = (
    '<g><title>{}</title><rect class="pytheus-hit" x="{}" y="0" width="{}" height="{}"/>'
    '<rect class="pytheus-bar" x="{}" y="{}" width="{}" height="{}"/></g>'
)
_TICK = '<text class="pytheus-tick" x="{}" y="{}" text-anchor="middle">{}</text>'


@register.simple_tag
def pytheus_chart(chart: Chart) -> SafeString:
    """The chart's SVG: one group per bucket (its tooltip, a hit area, the bar), the
    bounds under the bars of a large chart, and what it shows in words as its name."""
    bars = format_html_join(
        "",
        _BAR,
        ((b.title, b.x, b.width, chart.height, b.x, b.y, b.width, b.height) for b in chart.bars),
    )
    ticks = (
        format_html_join(
            "", _TICK, ((b.cx, chart.label_y, b.label) for b in chart.bars if b.show_label)
        )
        if chart.large
        else ""
    )
    return format_html(
        '<svg class="pytheus-chart{}" width="{}" height="{}" viewBox="0 0 {} {}" role="img" '
        'aria-label="{}" data-pytheus-chart><line class="pytheus-axis" x1="0" y1="{}" '
        'x2="{}" y2="{}"/>{}{}</svg>',
        " pytheus-chart-large" if chart.large else "",
        chart.width,
        chart.full_height,
        chart.width,
        chart.full_height,
        chart.summary,
        chart.height,
        chart.width,
        chart.height,
        bars,
        ticks,
    )
