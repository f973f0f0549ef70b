"""deploy/kserve/ checked against the real schemas by tools (Kubernetes' own through kubernetes-validate; KServe's
CRDs from ../shared/data/kserve, skipped cleanly without it), and against the service it deploys: probe routes,
port, models folder, settings names, runtime and model format, volume claim."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from app.config import Settings
from app.http.main import create_app
from tests.support.kube_schemas import CRD_FOLDER, crd_schemas, documents, errors
from tests.support.paths import ROOT

FOLDER = ROOT / "deploy" / "kserve"
DOCS = documents(FOLDER)
needs_crds = pytest.mark.skipif(not CRD_FOLDER.is_dir(), reason=f"KServe's CRDs are not in {CRD_FOLDER}")


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for _, doc in DOCS if doc["kind"] == kind]


@pytest.fixture(scope="module")
def crds() -> dict:
    return crd_schemas()


def test_the_folder_holds_cpu_and_gpu_runtimes_and_services_and_the_models_volume() -> None:
    names = sorted((doc["kind"], doc["metadata"]["name"]) for _, doc in DOCS)
    assert names == [
        ("InferenceService", "deepserve"),
        ("InferenceService", "deepserve-gpu"),
        ("PersistentVolumeClaim", "deepserve-models"),
        ("ServingRuntime", "deepserve"),
        ("ServingRuntime", "deepserve-gpu"),
    ]


@pytest.mark.parametrize(("path", "doc"), DOCS, ids=[f"{p.name}:{d['kind']}" for p, d in DOCS])
def test_every_manifest_passes_kubernetes_own_schemas(path: Path, doc: dict) -> None:
    assert errors(doc, None) == []


@needs_crds
@pytest.mark.parametrize(("path", "doc"), DOCS, ids=[f"{p.name}:{d['kind']}" for p, d in DOCS])
def test_every_manifest_passes_kserves_crd_schemas(path: Path, doc: dict, crds: dict) -> None:
    assert errors(doc, crds) == []


def broken(kind: str, change) -> dict:
    doc = copy.deepcopy(of_kind(kind)[0])
    change(doc)
    return doc


def container(doc: dict) -> dict:
    return doc["spec"]["containers"][0]


CORE_REFUSED = {
    "a misspelt probe field": broken("ServingRuntime", lambda d: container(d)["readinessProbe"].update(httpGett={})),
    "a port that is not a number": broken("ServingRuntime", lambda d: container(d)["ports"][0].update(containerPort="http")),  # noqa: E501
    "a probe period in words": broken("ServingRuntime", lambda d: container(d)["livenessProbe"].update(periodSeconds="often")),  # noqa: E501
    "an unknown volume claim field": broken("PersistentVolumeClaim", lambda d: d["spec"].update(accesModes=["x"])),
    "a label that is not a string": broken("InferenceService", lambda d: d["metadata"].update(labels={"tier": 1})),
}
CRD_REFUSED = {
    "a misspelt autoscaling field": broken("InferenceService", lambda d: d["spec"]["predictor"].update(scaleTargett=2)),  # noqa: E501
    "an unknown scale metric": broken("InferenceService", lambda d: d["spec"]["predictor"].update(scaleMetric="latency")),  # noqa: E501
    "a model format without a name": broken("InferenceService", lambda d: d["spec"]["predictor"]["model"]["modelFormat"].pop("name")),  # noqa: E501
    "a runtime field that does not exist": broken("ServingRuntime", lambda d: d["spec"].update(protocolVersion="v2")),  # noqa: E501
}


@pytest.mark.parametrize("case", CORE_REFUSED)
def test_kubernetes_schemas_refuse_a_broken_manifest(case: str) -> None:
    assert errors(CORE_REFUSED[case], None), case


@needs_crds
@pytest.mark.parametrize("case", CRD_REFUSED)
def test_kserve_schemas_refuse_a_broken_manifest(case: str, crds: dict) -> None:
    assert errors(CRD_REFUSED[case], None) == []  # Kubernetes' schemas cannot see it: only the CRD's can
    assert errors(CRD_REFUSED[case], crds), case


def env(c: dict) -> dict[str, str]:
    return {e["name"]: e["value"] for e in c["env"]}


def mebibytes(quantity: str) -> float:
    units = {"Mi": 1, "Gi": 1024}
    return float(quantity[:-2]) * units[quantity[-2:]]


@pytest.mark.parametrize("runtime", of_kind("ServingRuntime"), ids=lambda d: d["metadata"]["name"])
def test_runtimes_probe_the_services_health_routes_on_its_port(runtime: dict, tmp_path: Path) -> None:
    routes = create_app(Settings(models_dir=tmp_path)).openapi()["paths"]
    [c] = runtime["spec"]["containers"]
    port = c["ports"][0]["containerPort"]
    assert int(env(c)["UVICORN_PORT"]) == port == 8080  # KServe's serving port
    assert c["livenessProbe"]["httpGet"]["path"] == "/v2/health/live" in routes
    assert c["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready" in routes
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert c[probe]["httpGet"]["port"] == port
    assert env(c)["DEEPSERVE_MODELS_DIR"] == "/mnt/models"  # where KServe's storage initializer puts storageUri
    settings = {f"DEEPSERVE_{name.upper()}" for name in Settings.model_fields}
    assert {name for name in env(c) if name.startswith("DEEPSERVE_")} <= settings  # no misspelt setting
    limits, requests = c["resources"]["limits"], c["resources"]["requests"]
    budget = int(env(c)["DEEPSERVE_MAX_INFLIGHT_MB"])
    assert mebibytes(limits["memory"]) >= mebibytes(requests["memory"]) and mebibytes(limits["memory"]) > budget + 118
    assert "v2" in runtime["spec"]["protocolVersions"]


@pytest.mark.parametrize("runtime", of_kind("ServingRuntime"), ids=lambda d: d["metadata"]["name"])
def test_runtimes_give_the_service_a_writable_data_folder(runtime: dict) -> None:
    """The root filesystem is read-only: the data folder (anomaly streams) must be a volume, or every stream
    route answers 503."""
    [c] = runtime["spec"]["containers"]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"] if not m.get("readOnly")}
    volumes = {v["name"] for v in runtime["spec"]["volumes"]}
    assert mounts.get(env(c)["DEEPSERVE_DATA_DIR"]) in volumes


@pytest.mark.parametrize("service", of_kind("InferenceService"), ids=lambda d: d["metadata"]["name"])
def test_services_run_on_a_runtime_here_with_the_models_volume(service: dict) -> None:
    runtimes = {doc["metadata"]["name"]: doc for doc in of_kind("ServingRuntime")}
    predictor = service["spec"]["predictor"]
    model = predictor["model"]
    runtime = runtimes[model["runtime"]]
    assert model["modelFormat"] in runtime["spec"]["supportedModelFormats"] or {
        "name": model["modelFormat"]["name"], "version": model["modelFormat"]["version"]
    } in [{k: f[k] for k in ("name", "version")} for f in runtime["spec"]["supportedModelFormats"]]
    assert model["protocolVersion"] in runtime["spec"]["protocolVersions"]
    [claim] = [doc["metadata"]["name"] for doc in of_kind("PersistentVolumeClaim")]
    assert model["storageUri"].startswith(f"pvc://{claim}/")
    assert predictor["scaleMetric"] == "concurrency" and 1 <= predictor["minReplicas"] <= predictor["maxReplicas"]
