"""deploy/: the alert rules pass promtool (syntax and their unit tests), and every metric the
rules and the Grafana dashboard name is one the app exports."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from server.settings import PROJECT_ROOT

DEPLOY = PROJECT_ROOT / "deploy"
RULES = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "pcg-graphql.json"
TOKEN = "token:" + "d" * 24
_METRIC = re.compile(r"\bpcg_[a-z0-9_]+")
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is required on CI (.ci/run installs Debian's prometheus package)")
        pytest.skip("promtool is not installed (apt-get install --no-install-recommends prometheus)")
    return found


def test_alert_rules_pass_promtool():
    promtool = _promtool()
    checked = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run([promtool, "test", "rules", "alerts.test.yml"], capture_output=True, text=True,
                            cwd=RULES.parent)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_the_alerts_the_issue_asks_for_are_there():
    rules = yaml.safe_load(RULES.read_text())
    names = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    assert {"PcgHighErrorRate", "PcgSlowOperations", "PcgDatabasePoolSaturated",
            "PcgBrokerDisconnected", "PcgNoraFailureRate"} <= names


def _expressions() -> list[str]:
    rules = yaml.safe_load(RULES.read_text())
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    dashboard = json.loads(DASHBOARD.read_text())
    exprs += [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    return exprs


@pytest.mark.settings(metrics=TOKEN)
async def test_every_metric_named_in_deploy_is_exported(client):
    response = await client.get("/metrics", headers={"Authorization": "Bearer " + "d" * 24})
    assert response.status_code == 200
    exported = set()
    for family in text_string_to_metric_families(response.text):
        exported.update(family.name + suffix for suffix in _SUFFIXES.get(family.type, ("",)))
    named = {name for expr in _expressions() for name in _METRIC.findall(expr)}
    assert len(named) >= 20
    assert named - exported == set()
