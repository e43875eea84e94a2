"""dashboards/django.json: the generator's output, valid for Grafana's schema, consistent with
deploy/prometheus/rules.yml; the rules themselves pass promtool's checks and unit tests.

No Grafana server can be installed here (Debian does not package it, PyPI and npm ship no
server), so the dashboard is checked against Grafana's own schema as grafana-foundation-sdk
models it: decoding the JSON into its typed models and encoding it again must give the same
JSON, which it does not if any key, panel option or query field is unknown to the schema.
Every query's PromQL is parsed by promtool; tests/e2e/test_dashboard.py runs them all
against a real Prometheus scraping the demo.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models.dashboard import Dashboard

from dashboards import generate
from tests.servers import require_program

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "dashboards" / "django.json"
RULES = ROOT / "deploy" / "prometheus" / "rules.yml"
RULES_TEST = ROOT / "deploy" / "prometheus" / "rules_test.yml"
# What Grafana puts in for the variables when "All" is chosen (their allValue).
VARIABLES = {"$job": ".*", "$instance": ".*", "$view": ".*", "${datasource}": "prometheus"}


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def panels() -> list[dict[str, Any]]:
    return [p for p in dashboard()["panels"] if p["type"] != "row"]


def exprs() -> list[tuple[str, str]]:
    """(panel title, expr) of every query of the dashboard."""
    return [(p["title"], t["expr"]) for p in panels() for t in p["targets"]]


def substitute(expr: str) -> str:
    for variable, value in VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr


def rules() -> list[dict[str, Any]]:
    data = yaml.safe_load(RULES.read_text())
    return [rule for group in data["groups"] for rule in group["rules"]]


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_program("promtool"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )


# --------------------------------------------------------------------------- the artifact


def test_checked_in_json_is_the_generators_output() -> None:
    assert DASHBOARD.read_text() == generate.render(), (
        "dashboards/django.json is stale: run .venv/bin/python dashboards/generate.py"
    )
    assert generate.main(["--check"]) == 0


def test_json_round_trips_through_grafanas_schema() -> None:
    register_default_plugins()
    original = dashboard()
    decoded = Dashboard.from_json(original)
    assert json.loads(JSONEncoder(sort_keys=True).encode(decoded)) == original
    # The check bites: a key outside the schema is dropped by the round trip.
    broken = json.loads(json.dumps(original))
    broken["panels"][1]["fieldConfig"]["defaults"]["unt"] = "s"
    again = json.loads(JSONEncoder(sort_keys=True).encode(Dashboard.from_json(broken)))
    assert again != broken


def test_panels_tile_the_grid_and_ids_are_unique() -> None:
    all_panels = dashboard()["panels"]
    ids = [p["id"] for p in all_panels]
    assert len(ids) == len(set(ids))
    cells: dict[tuple[int, int], str] = {}
    for p in all_panels:
        pos = p["gridPos"]
        assert pos["x"] >= 0, p["title"]
        assert pos["x"] + pos["w"] <= 24, p["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{p['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = p["title"]


def test_every_panel_queries_the_datasource_variable_and_has_a_description() -> None:
    titles = set()
    for p in panels():
        assert p["title"] not in titles, f"two panels are called {p['title']!r}"
        titles.add(p["title"])
        assert p["description"], p["title"]
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert p["targets"], p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs)), p["title"]
        for target in p["targets"]:
            assert target["datasource"] == p["datasource"]


def test_variables() -> None:
    variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
    assert set(variables) == {"datasource", "job", "instance", "view"}
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("job", "instance", "view"):
        assert variables[name]["allValue"] == ".*"
        assert variables[name]["includeAll"] is True
        assert f", {name})" in variables[name]["query"]
    used = set(re.findall(r"\$\{?(\w+)", json.dumps([t for _, t in exprs()])))
    assert used <= set(variables), used - set(variables)
    # Every query is narrowed to the chosen job and instance.
    for title, expr in exprs():
        assert 'job=~"$job"' in expr, title
        assert 'instance=~"$instance"' in expr, title


def test_every_recorded_series_the_dashboard_reads_is_in_the_rules() -> None:
    recorded = {r["record"] for r in rules() if "record" in r}
    read = {name for _, expr in exprs() for name in re.findall(r"\b\w+:\w+:\w+\b", expr)}
    assert read, "the dashboard reads no recording rule"
    assert read <= recorded, read - recorded
    # ... and every recording rule is read by the dashboard or an alert.
    alerts = " ".join(r["expr"] for r in rules() if "alert" in r)
    unused = {name for name in recorded if name not in read and name not in alerts}
    assert not unused, unused


def test_every_query_is_valid_promql(tmp_path: Path) -> None:
    # promtool parses rule expressions: each query becomes a recording rule.
    group = {
        "name": "dashboard",
        "rules": [
            {"record": f"dashboard:query:{i}", "expr": substitute(expr)}
            for i, (_, expr) in enumerate(exprs())
        ],
    }
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump({"groups": [group]}))
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(group['rules'])} rules found" in result.stdout
    # The check bites.
    path.write_text(
        yaml.safe_dump({"groups": [{**group, "rules": [{"record": "a:b:c", "expr": "sum(("}]}]})
    )
    assert promtool("check", "rules", str(path)).returncode != 0


# --------------------------------------------------------------------------- the rules


def test_rules_pass_promtool_check() -> None:
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules())} rules found" in result.stdout


def test_rules_unit_tests_pass() -> None:
    result = promtool("test", "rules", str(RULES_TEST))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_is_tested_firing_and_silent() -> None:
    tests = yaml.safe_load(RULES_TEST.read_text())["tests"]
    firing: set[str] = set()
    silent: set[str] = set()
    for test in tests:
        for case in test.get("alert_rule_test", []):
            (firing if case["exp_alerts"] else silent).add(case["alertname"])
    alerts = {r["alert"] for r in rules() if "alert" in r}
    assert alerts == firing, alerts ^ firing
    assert alerts == silent, alerts ^ silent


@pytest.mark.parametrize("rule", [r for r in rules() if "alert" in r], ids=lambda r: r["alert"])
def test_alerts_say_what_and_how_bad(rule: dict[str, Any]) -> None:
    assert rule["labels"]["severity"] in {"page", "ticket"}
    assert rule["annotations"]["summary"]
    assert len(rule["annotations"]["description"]) > 80
