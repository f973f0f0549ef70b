"""Kubernetes manifests checked against the real schemas, not by eye: core kinds with `kubernetes-validate` (the
Kubernetes API's own OpenAPI schemas, strict: an unknown field is an error), KServe kinds against the
`openAPIV3Schema` of KServe's own CRDs (../shared/data/kserve; never committed), made strict the same way.

    python -m tests.support.kube_schemas deploy/kserve   # one line per manifest; exit 1 on any error
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

from tests.support.paths import SHARED_DATA

KUBERNETES_VERSION = "1.33"  # a version KServe supports; kubernetes-validate bundles its schemas
CRD_FOLDER = SHARED_DATA / "kserve"
POD_FIELDS = ("containers", "volumes", "tolerations", "nodeSelector", "affinity", "imagePullSecrets")


def documents(folder: Path) -> list[tuple[Path, dict[str, Any]]]:
    """Every YAML document in the folder's *.yaml files, with its file."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's: the CRDs are 2 MB of YAML
    return [
        (path, doc) for path in sorted(folder.glob("*.yaml")) for doc in yaml.load_all(path.read_text(), loader) if doc
    ]


def strict(schema: Any) -> Any:
    """A CRD's openAPIV3Schema as JSON Schema that refuses unknown fields (as `kubectl apply` with server-side
    field validation does): objects that list their properties and do not preserve unknown fields get
    additionalProperties false; OpenAPI's `nullable` becomes a null type."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: strict(value) for key, value in schema.items()}
    if out.pop("nullable", False) and "type" in out:
        out["type"] = [out["type"], "null"]
    closed = "properties" in out and not out.get("x-kubernetes-preserve-unknown-fields")
    if closed and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


def crd_schemas(folder: Path = CRD_FOLDER) -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> strict JSON Schema, for every served version of every CRD in the folder."""
    schemas = {}
    for _, crd in documents(folder):
        if crd.get("kind") != "CustomResourceDefinition":
            continue
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if version.get("served"):
                schemas[(f"{group}/{version['name']}", kind)] = strict(version["schema"]["openAPIV3Schema"])
    return schemas


def core_errors(doc: dict[str, Any]) -> list[str]:
    try:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [f"{'.'.join(map(str, exc.path)) or '(top)'}: {exc.message}"]
    return []


def pod_of(doc: dict[str, Any]) -> dict[str, Any]:
    """The pod-level parts of a KServe resource (a ServingRuntime's containers, volumes, tolerations, ...) as a Pod,
    so Kubernetes' own schema checks them too."""
    spec = {field: copy.deepcopy(doc["spec"][field]) for field in POD_FIELDS if field in doc.get("spec", {})}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": doc["metadata"]["name"]}, "spec": spec}


def errors(doc: dict[str, Any], crds: dict[tuple[str, str], dict[str, Any]] | None) -> list[str]:
    """What is wrong with one manifest. KServe kinds: against the CRD (skipped when `crds` is None), plus their
    metadata (as a ConfigMap's) and pod-level parts (as a Pod) against Kubernetes' schemas."""
    if not doc.get("apiVersion", "").startswith("serving.kserve.io/"):
        return core_errors(doc)
    found = [*core_errors({"apiVersion": "v1", "kind": "ConfigMap", "metadata": doc.get("metadata", {})})]
    if "containers" in doc.get("spec", {}):
        found += [f"pod: {e}" for e in core_errors(pod_of(doc))]
    if crds is not None:
        schema = crds.get((doc["apiVersion"], doc["kind"]))
        if schema is None:
            return [*found, f"no CRD for {doc['apiVersion']} {doc['kind']}"]
        validator = jsonschema.Draft7Validator(schema)
        found += [f"{'.'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in validator.iter_errors(doc)]
    return found


def main(folder: str) -> int:
    crds = crd_schemas() if CRD_FOLDER.is_dir() else None
    print(f"Kubernetes {KUBERNETES_VERSION} schemas (kubernetes-validate {kubernetes_validate.__version__}, strict); "
          + (f"KServe CRDs from {CRD_FOLDER}: {len(crds)} kinds" if crds else "KServe CRDs: not found, skipped"))
    failed = 0
    for path, doc in documents(Path(folder)):
        problems = errors(doc, crds)
        failed += bool(problems)
        print(f"{'FAIL' if problems else 'ok  '} {path.name}: {doc['kind']} {doc['metadata']['name']}")
        for problem in problems:
            print(f"     {problem}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "deploy/kserve"))
