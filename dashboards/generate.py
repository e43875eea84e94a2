"""Build the Grafana dashboard of a Django site instrumented with django_pytheus.

    .venv/bin/python dashboards/generate.py           # writes dashboards/django.json
    .venv/bin/python dashboards/generate.py --check   # exits 1 if django.json is stale

The dashboard is code, built with Grafana's own typed builders (grafana-foundation-sdk,
its variant for Grafana 11.6), and ``django.json`` is its output, checked in for
Grafana's file provisioning (deploy/grafana/) and for import by hand. Edit this file,
run it, commit both; tests/dashboards checks that they agree.

Queries read the recording rules of deploy/prometheus/rules.yml where one exists (the
``level:metric:operation`` names), so that a dashboard over days stays cheap; the few
gauges and rare counters are read raw. Every query honours the ``job`` and ``instance``
variables, and the per-view ones ``view``. With the Redis backend every instance of a
job reports the numbers of all its processes: choose one instance, or scrape one address.

Adding a row: write a function that returns its panels, like :func:`traffic` or
:func:`celery`, and add it to :data:`ROWS` with its title; panel ids and grid positions
follow from the order.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from grafana_foundation_sdk.builders import bargauge, dashboard, prometheus, stat, timeseries
from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.variants import Dataquery
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

OUTPUT = Path(__file__).resolve().parent / "django.json"
UID = "django-pytheus"
TITLE = "Django (django_pytheus)"

DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
#: Every query's selector; ``VIEW`` adds the view variable.
SEL = 'job=~"$job", instance=~"$instance"'
VIEW = f'{SEL}, view=~"$view"'

Panel = timeseries.Panel | bargauge.Panel | stat.Panel
Query = Builder[Dataquery]


# --------------------------------------------------------------------------- helpers


def query(expr: str, legend: str = "", ref: str = "A", *, instant: bool = False) -> Query:
    """A Prometheus query; ``legend`` is Grafana's legend format (``{{view}}``)."""
    q = prometheus.Dataquery().expr(expr).ref_id(ref).datasource(DATASOURCE)
    if legend:
        q = q.legend_format(legend)
    return q.instant().format(PromQueryFormat.TIME_SERIES) if instant else q.range()


def graph(
    title: str, description: str, unit: str, *targets: Query, span: int = 12
) -> timeseries.Panel:
    """A time series panel."""
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .min(0)
        .span(span)
        .height(8)
        .fill_opacity(10)
        .legend(
            common_builders.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.TABLE)
            .placement(common.LegendPlacement.RIGHT)
            .show_legend(True)
            .calcs(["mean", "max"])
        )
    )
    for target in targets:
        panel = panel.with_target(target)
    return panel


def top(title: str, description: str, unit: str, target: Query, span: int = 12) -> bargauge.Panel:
    """A bar gauge of an instant ``topk()`` query: the worst offenders now."""
    return (
        bargauge.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .min(0)
        .span(span)
        .height(8)
        .orientation(common.VizOrientation.HORIZONTAL)
        .display_mode(common.BarGaugeDisplayMode.GRADIENT)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]))
        .with_target(target)
    )


def single(title: str, description: str, unit: str, target: Query, span: int = 6) -> stat.Panel:
    """A single number."""
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(span)
        .height(4)
        .graph_mode(common.BigValueGraphMode.AREA)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]))
        .with_target(target)
    )


def quantile(q: float, rates: str, by: str) -> str:
    """``histogram_quantile(q, ...)`` of recorded bucket rates, summed ``by`` (plus le)."""
    return f"histogram_quantile({q}, sum by ({by}le) ({rates}))"


# --------------------------------------------------------------------------- rows

REQUESTS = f"job_instance_view:django_http_requests:rate5m{{{VIEW}}}"
ERRORS = f"job_instance_view:django_http_errors:rate5m{{{VIEW}}}"
DURATION = f"job_instance_view_le:django_http_request_duration_seconds_bucket:rate5m{{{VIEW}}}"


def traffic() -> list[Panel]:
    return [
        single(
            "Requests per second",
            "Requests answered per second (5-minute rate), every view chosen.",
            "reqps",
            query(f"sum({REQUESTS})"),
        ),
        single(
            "Error ratio",
            "Share of requests answered with a 5xx (5-minute rate).",
            "percentunit",
            query(f"sum({ERRORS}) / sum({REQUESTS})"),
        ),
        single(
            "Latency p99",
            "99th percentile of the time to answer a request, every view chosen.",
            "s",
            query(quantile(0.99, DURATION, "")),
        ),
        single(
            "Requests in progress",
            "Requests being answered right now, summed over every process.",
            "short",
            query(f"sum(django_http_requests_in_progress{{{SEL}}})"),
        ),
        graph(
            "Requests per second by view",
            "5-minute rate of requests, by route pattern (or view name).",
            "reqps",
            query(f"sum by (view) ({REQUESTS})", "{{view}}"),
        ),
        graph(
            "Responses by status",
            "5-minute rate of responses, by HTTP status.",
            "reqps",
            query(
                f"sum by (status) (job_instance_status:django_http_requests:rate5m{{{SEL}}})",
                "{{status}}",
            ),
        ),
        graph(
            "Error ratio by view",
            "Share of each view's requests answered with a 5xx (5-minute rate).",
            "percentunit",
            query(f"sum by (view) ({ERRORS}) / sum by (view) ({REQUESTS})", "{{view}}"),
        ),
        graph(
            "Requests in progress by method",
            "Requests being answered, by HTTP method (live processes only).",
            "short",
            query(f"sum by (method) (django_http_requests_in_progress{{{SEL}}})", "{{method}}"),
        ),
    ]


def latency() -> list[Panel]:
    return [
        graph(
            "Latency percentiles",
            "p50, p90 and p99 of the time to answer a request, from the request-duration "
            "histogram, every view chosen.",
            "s",
            query(quantile(0.5, DURATION, ""), "p50", "A"),
            query(quantile(0.9, DURATION, ""), "p90", "B"),
            query(quantile(0.99, DURATION, ""), "p99", "C"),
        ),
        graph(
            "Latency p99 by view",
            "99th percentile of each view's time to answer.",
            "s",
            query(quantile(0.99, DURATION, "view, "), "{{view}}"),
        ),
        top(
            "Slowest views (p99, now)",
            "The ten views with the highest 99th percentile latency over the last 5 minutes.",
            "s",
            query(f"topk(10, {quantile(0.99, DURATION, 'view, ')})", "{{view}}", instant=True),
            span=24,
        ),
    ]


QUERIES_SUM = f"job_instance_view:django_db_queries_per_request_sum:rate5m{{{VIEW}}}"
QUERIES_COUNT = f"job_instance_view:django_db_queries_per_request_count:rate5m{{{VIEW}}}"
QUERIES_BUCKETS = f"job_instance_view_le:django_db_queries_per_request_bucket:rate5m{{{VIEW}}}"
QUERY_DURATION = f"job_instance_alias_le:django_db_query_duration_seconds_bucket:rate5m{{{SEL}}}"


def database() -> list[Panel]:
    return [
        graph(
            "Queries per request by view",
            "Mean number of database queries a request to each view makes.",
            "short",
            query(f"sum by (view) ({QUERIES_SUM}) / sum by (view) ({QUERIES_COUNT})", "{{view}}"),
        ),
        top(
            "N+1 finder: views by queries per request (p99, now)",
            "The ten views whose requests make the most queries (99th percentile): a number "
            "that grows with the data is an N+1 query to fix with select_related or "
            "prefetch_related.",
            "short",
            query(
                f"topk(10, {quantile(0.99, QUERIES_BUCKETS, 'view, ')})", "{{view}}", instant=True
            ),
        ),
        graph(
            "Queries per second",
            "5-minute rate of queries, by database alias and statement kind.",
            "ops",
            query(
                "sum by (alias, statement) "
                f"(job_instance_alias_statement:django_db_queries:rate5m{{{SEL}}})",
                "{{alias}} {{statement}}",
            ),
        ),
        graph(
            "Query latency",
            "p50 and p99 of query durations, by database alias.",
            "s",
            query(quantile(0.5, QUERY_DURATION, "alias, "), "{{alias}} p50", "A"),
            query(quantile(0.99, QUERY_DURATION, "alias, "), "{{alias}} p99", "B"),
        ),
        graph(
            "Query errors",
            "Queries that raised, by alias and exception type (5-minute rate).",
            "ops",
            query(
                f"sum by (alias, type) (rate(django_db_query_errors_total{{{SEL}}}[5m]))",
                "{{alias}} {{type}}",
            ),
        ),
        single(
            "Unapplied migrations",
            'Migrations the code has and the database lacks (PYTHEUS["MIGRATION_METRICS"]).',
            "short",
            query(f"max by (alias) (django_db_migrations_unapplied{{{SEL}}})", "{{alias}}"),
            span=12,
        ),
    ]


CACHE_HITS = f"job_instance_cache:django_cache_hits:rate5m{{{SEL}}}"
CACHE_MISSES = f"job_instance_cache:django_cache_misses:rate5m{{{SEL}}}"
CACHE_DURATION = (
    "job_instance_cache_operation_le:django_cache_operation_duration_seconds_bucket:rate5m"
    f"{{{SEL}}}"
)


def cache() -> list[Panel]:
    return [
        graph(
            "Cache hit ratio",
            "Share of cache lookups that found their key, by cache alias (a cached falsy "
            "value is a hit).",
            "percentunit",
            query(
                f"sum by (cache) ({CACHE_HITS}) / "
                f"(sum by (cache) ({CACHE_HITS}) + sum by (cache) ({CACHE_MISSES}))",
                "{{cache}}",
            ),
            span=8,
        ),
        graph(
            "Cache lookups per second",
            "5-minute rate of hits and misses, by cache alias.",
            "ops",
            query(f"sum by (cache) ({CACHE_HITS})", "{{cache}} hits", "A"),
            query(f"sum by (cache) ({CACHE_MISSES})", "{{cache}} misses", "B"),
            span=8,
        ),
        graph(
            "Cache latency p99",
            "99th percentile of cache operation durations, by alias and operation.",
            "s",
            query(quantile(0.99, CACHE_DURATION, "cache, operation, "), "{{cache}} {{operation}}"),
            span=8,
        ),
    ]


def errors() -> list[Panel]:
    return [
        graph(
            "Exceptions by type",
            "Unhandled exceptions (answered with a 500), by exception type (5-minute rate).",
            "ops",
            query(
                f"sum by (type) (job_instance_view_type:django_http_exceptions:rate5m{{{VIEW}}})",
                "{{type}}",
            ),
        ),
        graph(
            "Exceptions by view",
            "Unhandled exceptions, by view (5-minute rate).",
            "ops",
            query(
                f"sum by (view) (job_instance_view_type:django_http_exceptions:rate5m{{{VIEW}}})",
                "{{view}}",
            ),
        ),
    ]


def backend() -> list[Panel]:
    return [
        graph(
            "Pending series",
            "Series changes the last flush of the Redis backend carried: large after an outage, "
            "while the processes catch up.",
            "short",
            query(f"max by (instance) (pytheus_backend_pending_series{{{SEL}}})", "{{instance}}"),
            span=6,
        ),
        graph(
            "Flush age",
            "Seconds since the least recently flushed live process wrote its metrics to Redis "
            "(each process sends this time with every tenth flush: up to ten flush intervals "
            "more).",
            "s",
            query(
                "time() - min by (instance) "
                f"(pytheus_backend_last_flush_timestamp_seconds{{{SEL}}})",
                "{{instance}}",
            ),
            span=6,
        ),
        graph(
            "Backend errors",
            "Failed flushes and scrapes of the Redis backend (5-minute rate).",
            "ops",
            query(
                f"sum by (instance) (rate(pytheus_backend_errors_total{{{SEL}}}[5m]))",
                "{{instance}}",
            ),
            span=6,
        ),
        graph(
            "Dropped series",
            "Label sets the cardinality guard refused, by metric (5-minute rate).",
            "ops",
            query(
                f"sum by (metric) (rate(pytheus_dropped_series_total{{{SEL}}}[5m]))", "{{metric}}"
            ),
            span=6,
        ),
    ]


TASKS_PUBLISHED = f"job_instance_task:celery_tasks_published:rate5m{{{SEL}}}"
TASKS_SUCCEEDED = f"job_instance_task:celery_tasks_succeeded:rate5m{{{SEL}}}"
TASKS_FAILED = f"rate(celery_tasks_failed_total{{{SEL}}}[5m])"
TASK_RUNTIME = f"job_instance_task_le:celery_task_runtime_seconds_bucket:rate5m{{{SEL}}}"
QUEUE_WAIT = f"job_instance_queue_le:celery_task_queue_wait_seconds_bucket:rate5m{{{SEL}}}"


def celery() -> list[Panel]:
    """Celery's tasks and workers (``PYTHEUS["CELERY"]``, pytheus.contrib.celery); with the
    Redis backend the web processes' scrape holds the workers' numbers too."""
    return [
        graph(
            "Tasks per second by task",
            "5-minute rate of tasks published (where delay() runs) and succeeded (in the "
            "workers), by task name; failures have the next panel.",
            "ops",
            query(f"sum by (task) ({TASKS_PUBLISHED})", "{{task}} published", "A"),
            query(f"sum by (task) ({TASKS_SUCCEEDED})", "{{task}} succeeded", "B"),
        ),
        graph(
            "Task failures by exception",
            "Tasks that raised, by task and exception type (5-minute rate; failures are rare, "
            "so read raw rather than recorded).",
            "ops",
            query(f"sum by (task, exception) ({TASKS_FAILED})", "{{task}} {{exception}}"),
        ),
        graph(
            "Queue wait",
            "p50 and p99 of the time from publication to the start of a task, by queue: a "
            "wait that grows means too few workers for the queue.",
            "s",
            query(quantile(0.5, QUEUE_WAIT, "queue, "), "{{queue}} p50", "A"),
            query(quantile(0.99, QUEUE_WAIT, "queue, "), "{{queue}} p99", "B"),
        ),
        graph(
            "Task run time p99 by task",
            "99th percentile of the time a task runs, by task name.",
            "s",
            query(quantile(0.99, TASK_RUNTIME, "task, "), "{{task}}"),
        ),
        graph(
            "Retries, revocations and rejections",
            "Tasks retried, revoked (by reason: revoked, terminated, expired) and rejected "
            "(unknown task, unreadable message), 5-minute rate.",
            "ops",
            query(
                f"sum by (task) (rate(celery_tasks_retried_total{{{SEL}}}[5m]))",
                "{{task}} retried",
                "A",
            ),
            query(
                f"sum by (task, reason) (rate(celery_tasks_revoked_total{{{SEL}}}[5m]))",
                "{{task}} revoked ({{reason}})",
                "B",
            ),
            query(
                f"sum by (reason) (rate(celery_tasks_rejected_total{{{SEL}}}[5m]))",
                "rejected ({{reason}})",
                "C",
            ),
        ),
        graph(
            "Tasks in progress and worker processes",
            "Tasks running now and the worker processes alive, by worker (live processes "
            "only: a killed worker drops out within the backend's process_timeout).",
            "short",
            query(
                f"sum by (worker) (celery_tasks_in_progress{{{SEL}}})", "{{worker}} running", "A"
            ),
            query(
                f"sum by (worker) (celery_worker_processes{{{SEL}}})", "{{worker}} processes", "B"
            ),
        ),
    ]


#: The dashboard's rows, top to bottom: (title, panels).
ROWS: Sequence[tuple[str, Callable[[], list[Panel]]]] = (
    ("Traffic", traffic),
    ("Latency", latency),
    ("Database", database),
    ("Cache", cache),
    ("Errors", errors),
    ("Celery tasks", celery),
    ("Metrics backend (pytheus)", backend),
)


# --------------------------------------------------------------------------- dashboard


def variables() -> list[Builder[model.VariableModel]]:
    def label_values(name: str, label: str, selector: str) -> dashboard.QueryVariable:
        return (
            dashboard.QueryVariable(name)
            .label(label)
            .datasource(DATASOURCE)
            .query(f"label_values({selector}, {name})")
            .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(model.VariableSort.ALPHABETICAL_ASC)
            .multi(True)
            .include_all(True)
            .all_value(".*")
        )

    return [
        dashboard.DatasourceVariable("datasource").label("Data source").type("prometheus"),
        label_values("job", "Job", "django_http_requests_total"),
        label_values("instance", "Instance", 'django_http_requests_total{job=~"$job"}'),
        label_values("view", "View", 'django_http_requests_total{job=~"$job"}'),
    ]


def build() -> model.Dashboard:
    """The dashboard, as Grafana's model."""
    builder = (
        dashboard.Dashboard(TITLE)
        .uid(UID)
        .description(
            "Requests, latency, database, cache, errors, Celery tasks and the metrics backend "
            "of a Django site instrumented with django_pytheus. Needs "
            "deploy/prometheus/rules.yml."
        )
        .tags(["django", "pytheus", "generated"])
        .editable()
        .refresh("30s")
        .time("now-1h", "now")
        .timezone("browser")
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
    )
    for variable in variables():
        builder = builder.with_variable(variable)
    next_id = 1
    for title, panels in ROWS:
        row = dashboard.Row(title).id(next_id)
        next_id += 1
        builder = builder.with_row(row)
        for panel in panels():
            builder = builder.with_panel(panel.id(next_id))
            next_id += 1
    return builder.build()


def render() -> str:
    """``django.json``'s text: the dashboard as JSON, keys sorted, with a final newline."""
    return JSONEncoder(sort_keys=True, indent=2).encode(build()) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--check", action="store_true", help=f"exit 1 if {OUTPUT.name} differs from the code"
    )
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if OUTPUT.read_text() != text:
            print(f"{OUTPUT} is stale: run {Path(__file__).name} and commit it.", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT} ({len(json.loads(text)['panels'])} panels and rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
