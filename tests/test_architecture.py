"""The shape docs/architecture.md describes, held by tests: a task is declared once (app/families/tasks.py) and read
by its route, the command line and the protocol adapters; a route module imports no other route module; no two
classes under app/ share a name."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from app.families import FAMILIES, family, tasks
from app.families.family import Family, Task
from app.http.api import openapi

ROOT = Path(__file__).resolve().parent.parent
API = ROOT / "app" / "http" / "api"


def parsed(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), str(path))


def route_modules() -> dict[str, ast.Module]:
    """The modules of app/http/api that declare routes (an APIRouter), by module name."""
    modules = {f"app.http.api.{p.stem}": parsed(p) for p in sorted(API.glob("*.py"))}
    return {name: tree for name, tree in modules.items() if "APIRouter(" in ast.unparse(tree)}


def imported(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_no_route_module_imports_another() -> None:
    routes = route_modules()
    assert {"app.http.api.predict", "app.http.api.explain", "app.http.api.models"} <= set(routes)
    found = {name: sorted(imported(tree) & (set(routes) - {name})) for name, tree in routes.items()}
    assert {name: others for name, others in found.items() if others} == {}


def test_no_task_strings_in_route_modules() -> None:
    """A task's name, or a family's, is never retyped in a route (constants such as TASK = "image-classification",
    DEFAULT_MODEL = "image" or a method map): the route reads its Task."""
    words = {*tasks.TASKS, *FAMILIES, *(m for task in tasks.TASKS.values() for m in task.methods)}
    found = {
        (name, node.value)
        for name, tree in route_modules().items()
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and node.value in words
    }
    assert found == set()


def test_request_bodies_state_their_own_served_schema() -> None:
    """The OpenAPI document's per-family rewrites live on the request models (RequestBody.served_schema): the web
    layer's openapi module names no family's request, field or limit."""
    from app.schemas import RequestBody

    source = (ROOT / "app" / "http" / "api" / "openapi.py").read_text()
    bodies = {body.__name__ for body in openapi.request_bodies(RequestBody)}
    assert {"SentimentRequest", "ExplainTextRequest", "AnomalyRequest"} <= bodies
    overriding = {b.__name__ for b in openapi.request_bodies(RequestBody) if "served_schema" in vars(b)}
    assert {"SentimentRequest", "ExplainTextRequest", "AnomalyRequest"} <= overriding
    assert not [word for word in (*bodies, "max_text_chars", "max_texts", ".window", "min_length") if word in source]


def test_every_family_answers_its_task_when_asked_as_the_command_line_asks() -> None:
    """`deepserve predict NAME` sends task.choose(NAME); the registry reads it back with task.model_for."""
    for name, fam in FAMILIES.items():
        task = tasks.TASKS[fam.task]
        choice = task.choose(name).get(task.selector) if task.selector else None
        assert task.model_for(choice) == name, (name, task.name)
    assert tasks.ANOMALY.choose("anomaly") == {"method": "autoencoder"}
    assert tasks.DIGIT.choose("digit") == {}


def test_a_family_of_an_undeclared_task_or_the_wrong_runtime_stops_the_import(monkeypatch) -> None:
    digit = FAMILIES["digit"]
    monkeypatch.setitem(FAMILIES, "typo", Family("typo", "image-clasification", "/x", "", digit.runtime))
    with pytest.raises(ValueError, match="unknown task 'image-clasification'"):
        tasks.check()
    monkeypatch.setitem(FAMILIES, "typo", Family("typo", tasks.DIGIT.name, "/x", "", FAMILIES["lstm"].runtime))
    with pytest.raises(TypeError, match="is not a DigitRuntime"):
        tasks.check()


def test_tasks_are_declared_once() -> None:
    """Each task's route is its own, and every declared task has a family."""
    assert len({task.path for task in tasks.TASKS.values()}) == len(tasks.TASKS)
    assert all(tasks.models(task) for task in tasks.TASKS.values())
    assert isinstance(tasks.IMAGE, Task) and family.Task is Task


def test_no_two_classes_under_app_share_a_name() -> None:
    """A name says which class it is (two ImageRuntime, Explained and StreamInfo classes before)."""
    seen: dict[str, list[str]] = {}
    for path in sorted((ROOT / "app").rglob("*.py")):
        for node in parsed(path).body:
            if isinstance(node, ast.ClassDef):
                seen.setdefault(node.name, []).append(str(path.relative_to(ROOT)))
    assert {name: paths for name, paths in seen.items() if len(paths) > 1} == {}


def test_stream_points_are_served_through_a_runtime_as_every_prediction(tmp_path: Path) -> None:
    """POST /anomaly/streams/{id}/points goes the one way in (Serving.serve -> the executor): its scoring is a call of
    the detector's model in /metrics and holds an admission slot, as POST /predict/anomaly's does (before, the route
    scored on the pool by itself: no model call was observed)."""
    from app.config import Settings
    from tests.support.paths import COMMITTED_MODELS
    from tests.support.seasonal import seasonal
    from tests.support.service import asgi_client

    settings = Settings(models_dir=COMMITTED_MODELS, models=["nearest_context"], data_dir=tmp_path)
    with asgi_client(settings) as client:
        body = {"values": seasonal()[:300].tolist()}
        assert client.post("/anomaly/streams/s1/points", json=body).status_code == 200
        metrics = client.get("/metrics").text
        assert 'deepserve_batch_size_count{model="nearest_context"} 1.0' in metrics
        limiter = client.app.state.limiter
        limiter.limit = 0  # no slot left: the stream's points wait for none, as a prediction would not
        assert client.post("/anomaly/streams/s1/points", json=body).status_code == 429


@pytest.mark.slow  # builds the wheels (a few seconds)
def test_the_serving_package_ships_no_training_code(tmp_path: Path) -> None:
    """The root pyproject builds `deepserve` (app/ only: what the serving image installs); training/pyproject.toml
    builds `deepserve-training`, which depends on it."""
    import shutil
    import subprocess
    import sys
    import zipfile

    src = tmp_path / "src"  # a copy: building writes build/ and *.egg-info next to the sources
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".*", "__pycache__", "tests", "bench", "models", "docs"))
    wheels = tmp_path / "wheels"
    for project in (src, src / "training"):
        command = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(project)]
        subprocess.run([*command, "-w", str(wheels)], check=True, capture_output=True)
    [serving] = wheels.glob("deepserve-*.whl")
    [training] = wheels.glob("deepserve_training-*.whl")
    tops = {name.split("/")[0] for name in zipfile.ZipFile(serving).namelist() if "dist-info" not in name}
    assert tops == {"app"}
    names = zipfile.ZipFile(training).namelist()
    assert "training/train_digit.py" in names and "training/common/artifacts.py" in names
    metadata = zipfile.ZipFile(training).read(next(n for n in names if n.endswith("METADATA")))
    assert b"Requires-Dist: deepserve[train]" in metadata
