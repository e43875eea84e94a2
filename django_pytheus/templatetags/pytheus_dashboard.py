"""Template tags of the admin metrics dashboard.

``{% pytheus_chart chart %}`` writes a bucket chart (:class:`~django_pytheus.dashboard.Chart`)
as inline SVG; ``{% pytheus_labels row %}`` and ``{% pytheus_cells row extra %}`` write a
series row's cells. A page holds up to 200 rows and charts, 13 bars each: written here
(every text escaped with :func:`html.escape`, which is what Django's ``escape`` does, minus
the lazy-string and safe-string bookkeeping) they cost a small part of what the same
markup costs as template nodes or through ``format_html``.
"""

from __future__ import annotations

from collections.abc import Collection
from html import escape

from django import template
from django.utils.safestring import SafeString, mark_safe

from django_pytheus.dashboard import Chart, Row

register = template.Library()

_BAR = (
    '<g><title>{}</title><rect class="pytheus-hit" x="{}" y="0" width="{}" height="{}"/>'
    '<rect class="pytheus-bar" x="{}" y="{}" width="{}" height="{}"/></g>'
)
_TICK = '<text class="pytheus-tick" x="{}" y="{}" text-anchor="middle">{}</text>'
#: A label longer than this wraps anywhere (a long path would widen the table).
LONG_LABEL = 48


@register.simple_tag
def pytheus_chart(chart: Chart) -> SafeString:
    """The chart's SVG: one group per bucket (its tooltip, a hit area, the bar), the
    bounds under the bars of a large chart, and what it shows in words as its name."""
    height = chart.height
    bars = "".join(
        _BAR.format(
            escape(b.title),
            escape(b.x),
            escape(b.width),
            height,
            escape(b.x),
            escape(b.y),
            escape(b.width),
            escape(b.height),
        )
        for b in chart.bars
    )
    ticks = (
        "".join(
            _TICK.format(escape(b.cx), chart.label_y, escape(b.label))
            for b in chart.bars
            if b.show_label
        )
        if chart.large
        else ""
    )
    large = " pytheus-chart-large" if chart.large else ""
    width, full = chart.width, chart.full_height
    return mark_safe(  # every text above is escaped
        f'<svg class="pytheus-chart{large}" width="{width}" height="{full}" '
        f'viewBox="0 0 {width} {full}" role="img" aria-label="{escape(chart.summary)}" '
        f'data-pytheus-chart><line class="pytheus-axis" x1="0" y1="{height}" '
        f'x2="{width}" y2="{height}"/>{bars}{ticks}</svg>'
    )


@register.simple_tag
def pytheus_labels(row: Row) -> SafeString:
    """The row's label cells: the value as shown, the raw value as its tooltip when it
    was prettified, ``(empty)`` for an empty value."""
    out = []
    for label, raw in row.label_pairs():
        long = " pytheus-label-long" if len(label) > LONG_LABEL else ""
        title = f' title="{escape(raw)}"' if raw else ""
        text = escape(label) if label else '<span class="quiet">(empty)</span>'
        out.append(f'<td class="pytheus-label{long}" data-pytheus-label{title}>{text}</td>')
    return mark_safe("".join(out))  # every text above is escaped


@register.simple_tag
def pytheus_cells(row: Row, extra: Collection[str]) -> SafeString:
    """The row's value cells; those of ``extra`` are left out on a phone until asked for."""
    out = []
    for cell in row.cells:
        estimate = " pytheus-estimate" if cell.estimate else ""
        hidden = " pytheus-extra" if cell.id in extra else ""
        title = f' title="{escape(cell.title)}"' if cell.title else ""
        out.append(
            f'<td class="pytheus-num{estimate}{hidden}" data-pytheus-cell="{escape(cell.id)}"'
            f"{title}>{escape(cell.text)}</td>"
        )
    return mark_safe("".join(out))  # every text above is escaped
