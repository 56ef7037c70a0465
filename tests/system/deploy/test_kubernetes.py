"""deploy/kubernetes/ against the Kubernetes schemas and against the code it deploys.

`kubernetes-validate --strict` checks every resource the kustomization lists against the
official schemas of a current Kubernetes release (bundled with the tool, no cluster needed).
The other tests hold the manifests to the code: probe paths are routes of the app, every
variable is a setting with a valid value, ports and user are the Dockerfile's, the grace
period covers the preStop pause plus the drain, and the resources cover the measured memory.
"""

import json
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import pytest
import yaml
from starlette.routing import Route

from app.core.config import Settings, load_settings
from app.main import create_app
from app.server.serve import STOP_GRACE_SECONDS
from model.artifact import DEFAULT_ARTIFACT_PATH

REPO: Final = Path(__file__).resolve().parents[3]
MANIFESTS: Final = REPO / "deploy" / "kubernetes"
KUBERNETES_VERSION: Final = "1.37.0"
VALIDATOR: Final = Path(sys.executable).parent / "kubernetes-validate"
STOP_MARGIN_SECONDS: Final = 5  # after the drain: the last answers, the worker's exit
# The latest make bench run's figures, which the docs' Performance page renders.
BENCH_HTTP: Final = REPO / "docs" / "data" / "bench" / "http.json"
RSS_GOAL: Final = "service RSS per worker, MB"
QUANTITY: Final = re.compile(r"^([0-9.]+)(m|Ki|Mi|Gi)?$")
UNITS: Final = {None: 1.0, "m": 1e-3, "Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30}

Manifest = dict[str, Any]


def resource_files() -> list[Path]:
    kustomization = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())
    return [MANIFESTS / name for name in kustomization["resources"]]


def resources() -> dict[str, Manifest]:
    loaded = {}
    for path in resource_files():
        for document in yaml.safe_load_all(path.read_text()):
            loaded[document["kind"]] = document
    return loaded


@pytest.fixture(scope="module")
def kinds() -> dict[str, Manifest]:
    return resources()


@pytest.fixture(scope="module")
def pod(kinds: dict[str, Manifest]) -> Manifest:
    spec: Manifest = kinds["Deployment"]["spec"]["template"]
    return spec


@pytest.fixture(scope="module")
def container(pod: Manifest) -> Manifest:
    (only,) = pod["spec"]["containers"]
    return dict(only)


def env_of(container: Manifest) -> dict[str, str]:
    """The container's literal settings (those from a Secret are in `secret_env_of`)."""
    return {item["name"]: item["value"] for item in container["env"] if "value" in item}


def secret_env_of(container: Manifest) -> dict[str, Manifest]:
    return {item["name"]: item["valueFrom"] for item in container["env"] if "valueFrom" in item}


DOCKERFILE_RECORD_DIR: Final = next(
    line.split("=", 1)[1].strip(" \\")
    for line in (REPO / "Dockerfile").read_text(encoding="utf-8").splitlines()
    if line.strip().startswith("RECORD_DIR=")
)


def quantity(text: str | int) -> float:
    match = QUANTITY.match(str(text))
    assert match, f"unexpected quantity {text!r}"
    return float(match[1]) * UNITS[match[2]]


def dockerfile() -> str:
    return (REPO / "Dockerfile").read_text()


# -- the schemas -------------------------------------------------------------------------------
def test_the_kustomization_lists_every_manifest() -> None:
    listed = {path.name for path in resource_files()}
    present = {path.name for path in MANIFESTS.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present


def validate(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [VALIDATOR, "--strict", "--kubernetes-version", KUBERNETES_VERSION, *paths],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_every_manifest_is_valid_for_kubernetes_strictly() -> None:
    result = validate(*resource_files())
    assert result.returncode == 0, result.stdout + result.stderr
    for path in resource_files():
        assert f"{path} passed" in result.stdout + result.stderr, result.stdout + result.stderr


def test_the_validator_rejects_an_unknown_field(tmp_path: Path) -> None:
    deployment = yaml.safe_load((MANIFESTS / "deployment.yaml").read_text())
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    broken = tmp_path / "deployment.yaml"
    broken.write_text(yaml.safe_dump(deployment))
    assert validate(broken).returncode != 0


# -- the manifests against the code ------------------------------------------------------------
def probes(container: Manifest) -> Iterator[tuple[str, Manifest]]:
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        yield kind, container[kind]["httpGet"]


def test_probes_ask_routes_of_the_app_on_the_http_port(container: Manifest) -> None:
    app = create_app(Settings(model_path=DEFAULT_ARTIFACT_PATH))
    get_routes = {
        route.path
        for route in app.routes
        if isinstance(route, Route) and "GET" in (route.methods or ())
    }
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    for kind, probe in probes(container):
        assert probe["path"] in get_routes, f"{kind} asks {probe['path']}, not a GET route"
        assert ports[probe["port"]] == int(env_of(container)["PORT"]), kind
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"


def test_every_variable_is_a_setting_with_a_valid_value(
    container: Manifest, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = {name.upper() for name in Settings.model_fields}
    env = env_of(container)
    assert set(env) <= names, f"not settings: {set(env) - names}"
    for name in names:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()  # SettingsError on a bad value
    assert settings.host == "0.0.0.0"


def test_ports_and_user_are_the_dockerfiles(pod: Manifest, container: Manifest) -> None:
    env = env_of(container)
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    exposed = [int(p) for p in re.findall(r"^EXPOSE\s+(\d+)", dockerfile(), re.MULTILINE)]
    assert exposed == [ports["http"]] == [int(env["PORT"])]
    assert re.search(rf"\bPORT={ports['http']}\b", dockerfile())
    assert (
        ports["metrics"]
        == int(env["METRICS_PORT"])
        == Settings.model_fields["metrics_port"].default
    )
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == ports["metrics"]
    user = re.search(r"^USER\s+(\d+):(\d+)\s*$", dockerfile(), re.MULTILINE)
    assert user, "the Dockerfile's USER is not numeric uid:gid"
    security = pod["spec"]["securityContext"]
    assert (security["runAsUser"], security["runAsGroup"]) == (int(user[1]), int(user[2]))


def test_the_container_is_locked_down(pod: Manifest, container: Manifest) -> None:
    security = {**pod["spec"]["securityContext"], **container["securityContext"]}
    assert security["runAsNonRoot"] is True
    assert security["runAsUser"] != 0
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["spec"]["automountServiceAccountToken"] is False


def test_writable_directories_are_empty_dirs(pod: Manifest, container: Manifest) -> None:
    """With a read-only root, /tmp and the metrics directory must be volumes of their own."""
    empty_dirs = {v["name"] for v in pod["spec"]["volumes"] if "emptyDir" in v}
    mounted = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    for path in ("/tmp", env_of(container)["PROMETHEUS_MULTIPROC_DIR"], DOCKERFILE_RECORD_DIR):
        assert mounted.get(path) in empty_dirs, f"{path} is not an emptyDir mount"


def test_the_database_url_comes_from_a_secret_only(container: Manifest) -> None:
    """The record's database credentials never stand in the manifest: DATABASE_URL is read
    from a Secret, optional so that a pod without one keeps its record on its own volume."""
    assert "DATABASE_URL" not in env_of(container)
    ref = secret_env_of(container)["DATABASE_URL"]["secretKeyRef"]
    assert ref["optional"] is True
    assert set(ref) == {"name", "key", "optional"}


def test_the_grace_period_covers_the_pause_and_the_drain(
    pod: Manifest, container: Manifest
) -> None:
    pause = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    drain = float(env_of(container)["SHUTDOWN_DRAIN_SECONDS"])
    grace = pod["spec"]["terminationGracePeriodSeconds"]
    assert pause > 0
    assert drain > 0
    assert grace >= pause + drain + STOP_MARGIN_SECONDS
    assert grace >= pause + drain + STOP_GRACE_SECONDS  # the running requests' last grace


def test_resources_cover_the_measured_worker_and_its_writer(container: Manifest) -> None:
    bench = json.loads(BENCH_HTTP.read_text(encoding="utf-8"))
    worker_mb = float(bench["goals"][RSS_GOAL]["value"])
    writer_mb = max(bench["writer_rss_mb"]["service"])  # the worker's record writer process
    requests, limits = container["resources"]["requests"], container["resources"]["limits"]
    assert env_of(container)["WORKERS"] == "1"  # the figures below are per worker
    assert quantity(requests["memory"]) >= 1.5 * (worker_mb + writer_mb) * 1e6
    assert quantity(limits["memory"]) >= 2 * quantity(requests["memory"])
    # The event loop is one Python thread and the record writer a process: under load each
    # keeps a core busy; a lower limit would throttle them into one.
    assert quantity(limits["cpu"]) >= 2
    assert 0 < quantity(requests["cpu"]) <= quantity(limits["cpu"])


def test_service_hpa_and_budget_select_the_deployment(kinds: dict[str, Manifest]) -> None:
    deployment = kinds["Deployment"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = kinds["Service"]["spec"]
    assert service["selector"].items() <= labels.items()
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert {p["targetPort"] for p in service["ports"]} == {"http"}
    assert "http" in {p["name"] for p in container["ports"]}
    hpa = kinds["HorizontalPodAutoscaler"]["spec"]
    target = hpa["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert [m["resource"]["name"] for m in hpa["metrics"]] == ["cpu"]
    assert hpa["minReplicas"] == deployment["spec"]["replicas"] == 2
    budget = kinds["PodDisruptionBudget"]["spec"]
    assert budget["selector"]["matchLabels"].items() <= labels.items()
    assert budget["minAvailable"] < hpa["minReplicas"], "a node drain could never evict a pod"


def test_the_image_tag_is_the_package_version(container: Manifest) -> None:
    kustomization = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())
    (image,) = kustomization["images"]
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert image["name"] == container["image"]
    assert image["newTag"] == project["version"]
