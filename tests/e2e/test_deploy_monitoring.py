"""docker-compose.yaml's monitoring: Prometheus loads deploy/prometheus/rules.yml, Grafana
provisions its data source and the dashboard from files, and they all point at each other.

No Docker engine runs here, so the files are read and compared (as tests/e2e/test_deploy.py
does for the demo); tests/e2e/test_dashboard.py runs a real Prometheus with the same
prometheus.yml and rules.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import yaml

from tests.e2e.test_deploy import ROOT, compose, prometheus_config, published

PROVISIONING = ROOT / "deploy" / "grafana" / "provisioning"
SDK_GRAFANA = "11.6"  # the grafana-foundation-sdk variant pyproject.toml pins


def mounts(service: str) -> dict[str, Path]:
    """A service's bind mounts: container path -> path in the repository."""
    out = {}
    for volume in compose()["services"][service]["volumes"]:
        source, target, *_ = volume.split(":")
        out[target] = (ROOT / source).resolve()
    return out


def in_container(service: str, path: str) -> Path:
    """Where the file a container sees at ``path`` comes from in the repository."""
    target = PurePosixPath(path)
    for mount, source in sorted(mounts(service).items(), key=lambda m: -len(m[0])):
        try:
            rest = target.relative_to(mount)
        except ValueError:
            continue
        return source / rest
    raise AssertionError(f"{path} is not mounted into the {service} container")


def test_prometheus_in_its_container_loads_the_rules() -> None:
    service = compose()["services"]["prometheus"]
    config_file = next(a.split("=", 1)[1] for a in service["command"] if "config.file" in a)
    rule_files = prometheus_config()["rule_files"]
    assert rule_files == ["deploy/prometheus/rules.yml"]
    for rule_file in rule_files:
        # Relative rule files are resolved against the config file's directory.
        seen = in_container("prometheus", str(PurePosixPath(config_file).parent / rule_file))
        assert seen == (ROOT / "deploy" / "prometheus" / "rules.yml").resolve()
        # ... and here, against prometheus.yml in the repository: promtool checks them.
        assert (ROOT / rule_file).exists()


def grafana() -> dict[str, Any]:
    service: dict[str, Any] = compose()["services"]["grafana"]
    return service


def provisioned(kind: str) -> list[dict[str, Any]]:
    directory = in_container("grafana", f"/etc/grafana/provisioning/{kind}")
    assert directory == (PROVISIONING / kind).resolve()
    files = sorted(directory.glob("*.yml"))
    assert files, directory
    return [yaml.safe_load(f.read_text()) for f in files]


def test_grafana_is_on_loopback_anonymous_and_read_only() -> None:
    service = grafana()
    assert published(service) == [("127.0.0.1", 3000, 3000)]
    env = service["environment"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    assert env["GF_AUTH_DISABLE_LOGIN_FORM"] == "true"
    # The image is the Grafana version the dashboard's schema was generated for.
    image, _, tag = service["image"].partition(":")
    assert image == "grafana/grafana"
    assert tag.startswith(SDK_GRAFANA + "."), tag
    assert SDK_GRAFANA in (ROOT / "pyproject.toml").read_text()
    assert "prometheus" in service["depends_on"]


def test_grafana_data_source_is_the_prometheus_service() -> None:
    (config,) = provisioned("datasources")
    (source,) = config["datasources"]
    assert source["type"] == "prometheus"
    assert source["isDefault"] is True
    url = urlsplit(source["url"])
    services = compose()["services"]
    assert url.hostname == "prometheus"
    assert url.hostname in services
    assert url.port in {c for _, _, c in published(services["prometheus"])}
    # Grafana's minimum step matches the scrape interval.
    assert source["jsonData"]["timeInterval"] == prometheus_config()["global"]["scrape_interval"]


def test_grafana_provisions_the_dashboard() -> None:
    (config,) = provisioned("dashboards")
    (provider,) = config["providers"]
    assert provider["type"] == "file"
    directory = in_container("grafana", provider["options"]["path"])
    assert directory == (ROOT / "dashboards").resolve()
    dashboard = json.loads((directory / "django.json").read_text())
    assert dashboard["uid"] == "django-pytheus"
    home = grafana()["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert in_container("grafana", home) == (ROOT / "dashboards" / "django.json").resolve()
    # Its data source variable picks a Prometheus one, such as the provisioned source.
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert (
        variables["datasource"]["query"] == provisioned("datasources")[0]["datasources"][0]["type"]
    )
