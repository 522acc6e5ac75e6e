"""deploy/k8s validates against the Kubernetes schemas and agrees with the service."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from ensemble.settings import Settings
from ledger.settings import LedgerSettings
from ops.settings import OpsSettings

#: Every area's settings (a variable belongs to one).
SETTING_FIELDS = {
    **Settings.model_fields,
    **LedgerSettings.model_fields,
    **OpsSettings.model_fields,
}

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
MANIFESTS = sorted(K8S.glob("*.yaml"))


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_is_valid_kubernetes(path: Path) -> None:
    for doc in yaml.safe_load_all(path.read_text()):
        kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)


def test_a_broken_manifest_is_caught() -> None:
    doc = yaml.safe_load((K8S / "service.yaml").read_text())
    doc["spec"]["ports"][0]["port"] = "eighty"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)


def test_deployment_matches_the_service() -> None:
    deployment = yaml.safe_load((K8S / "deployment.yaml").read_text())
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    from entry.health import CHECK_S

    # A probe's checks take up to CHECK_S; the kubelet's default timeout (1 s) left no room
    # for an answer queued behind a busy event loop.
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["timeoutSeconds"] >= 4 * CHECK_S, probe
    env = {e["name"]: e for e in container["env"]}
    assert env["YIELD_ENSEMBLE_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"]
    for name in env:  # every variable is a real setting
        assert name.removeprefix("YIELD_ENSEMBLE_").lower() in SETTING_FIELDS
    grace = Settings.model_fields["member_shutdown_grace_s"].default
    from entry.runtime import READ_WAIT_S, TRAFFIC_TIMEOUT_S

    # The drain outlasts the members' grace, a read queued as long as reads may queue, and
    # a request as long as BentoML lets one run (a client stalled mid-body holds it so long).
    assert pod["terminationGracePeriodSeconds"] > grace + 10
    assert pod["terminationGracePeriodSeconds"] >= READ_WAIT_S + 10
    assert pod["terminationGracePeriodSeconds"] >= TRAFFIC_TIMEOUT_S + 10
    assert pod["securityContext"]["runAsNonRoot"] is True


def test_api_keys_reach_the_pod_and_the_example_parses() -> None:
    from ops.auth import parse_keys

    pod = yaml.safe_load((K8S / "deployment.yaml").read_text())["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    key_file = Path(env["YIELD_ENSEMBLE_API_KEYS_FILE"])
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    (name,) = [n for n, path in mounts.items() if Path(path) == key_file.parent]
    secret_name = volumes[name]["secret"]["secretName"]
    secrets = {
        d["metadata"]["name"]: d
        for d in yaml.safe_load_all((K8S / "secret.example.yaml").read_text())
    }
    lines = secrets[secret_name]["stringData"][key_file.name].splitlines()
    assert {k.id for k in parse_keys(lines, "example")} == {"final-test-line-3", "yield-dashboard"}


def test_the_network_policy_selects_the_pods_and_their_port() -> None:
    deployment = yaml.safe_load((K8S / "deployment.yaml").read_text())
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    (port,) = deployment["spec"]["template"]["spec"]["containers"][0]["ports"]
    policy = yaml.safe_load((K8S / "networkpolicy.yaml").read_text())
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    assert {"Ingress", "Egress"} == set(policy["spec"]["policyTypes"])
    for rule in policy["spec"]["ingress"]:
        assert [p["port"] for p in rule["ports"]] == [port["containerPort"]]
