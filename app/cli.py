"""The `deepserve` command line: serve, train, list, promote and call models.

    deepserve serve [--port 8000] [--workers 2]       the service, on the promoted models in ./models
    deepserve train digit [--data mnist.npz ...]      a training run (writes a candidate; see `models`)
    deepserve models                                  every artifact: served, candidate, headline metric
    deepserve promote digit 2 [--force] [--url URL]   serve version 2 (refused if worse), reload a running service
    deepserve predict digit examples/digit.png        call a running service (text for sentiment, a file else)
    deepserve predict sentiment "Not bad at all."     a task's name: its default model

Built on click (already installed with uvicorn). Training runs in its own process (`python -m training...`), so
the service's package never imports training code, and a missing extra is one line saying which to install.
"""

from __future__ import annotations

import importlib.util
import json
import mimetypes
import os
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import click

from app.core.promotion import LoadRefused, PromotionFailed, PromotionRefused, headline, metric, promote
from app.families import FAMILIES
from app.families.family import Task
from app.families.tasks import ANOMALY, SENTIMENT, TASKS
from app.manifest import ManifestEntry, read_manifest

EXTRA_MODULES = {"train": ["tensorflow", "tf2onnx", "matplotlib"], "distilbert": ["torch", "transformers"]}
MODELS = click.option(
    "--models", type=click.Path(path_type=Path), default=Path(os.environ.get("DEEPSERVE_MODELS_DIR", "models")),
    show_default=True, help="The models folder (DEEPSERVE_MODELS_DIR).",
)  # fmt: skip
URL = click.option(
    "--url",
    default="http://127.0.0.1:8000",
    envvar="DEEPSERVE_URL",
    show_default=True,
    help="The running service (DEEPSERVE_URL).",
)
API_KEY = click.option("--api-key", envvar="DEEPSERVE_API_KEY", help="API key, when the service has keys on.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """DeepServe: trained deep-learning models served over REST."""


@main.command()
@click.option("--host", default="127.0.0.1", envvar="UVICORN_HOST", show_default=True, help="Address (UVICORN_HOST).")
@click.option("--port", default=8000, envvar="UVICORN_PORT", show_default=True, help="Port (UVICORN_PORT).")
@click.option(
    "--workers",
    default=2,
    envvar="DEEPSERVE_WORKERS",
    show_default=True,
    type=click.IntRange(min=1),
    help="Processes (DEEPSERVE_WORKERS), each with its own copy of every model and 1/N of the concurrency, memory "
    "and rate limits; they share metrics and anomaly streams, and reload together. One process uses one core for "
    "the Python part of a request.",
)
@MODELS
def serve(host: str, port: int, workers: int, models: Path) -> None:
    """Start the service on the promoted models of --models: a supervisor that hands each connection to the worker
    with the fewest, and restarts a worker that dies (app/workers)."""
    from app.config import Settings
    from app.http.middleware.request_log import setup_logging
    from app.workers.supervisor import Supervisor

    os.environ["DEEPSERVE_MODELS_DIR"] = str(models)
    os.environ["DEEPSERVE_WORKERS"] = str(workers)  # each process takes its share of the limits (app/core/limiter.py)
    settings = Settings()
    setup_logging(settings.log_level)
    with metrics_folder():
        supervisor = Supervisor(
            host, port, workers, settings.max_connections, reload_timeout=settings.reload_timeout_seconds
        )
        sys.exit(supervisor.run())


@contextmanager
def metrics_folder() -> Iterator[None]:
    """A fresh PROMETHEUS_MULTIPROC_DIR for the metrics files every worker writes (app/core/metrics.py), set before they
    start and removed when they stop."""
    with tempfile.TemporaryDirectory(prefix="deepserve-metrics-") as folder:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
        yield


TRAINABLE = sorted(n for n, f in FAMILIES.items() if f.trainer)


# No --help of its own: `deepserve train digit --help` is the script's (its flags and defaults); `deepserve train`
# and `deepserve train --help` are this one's.
@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []})
@click.argument("family", required=False, metavar=f"{{{'|'.join(TRAINABLE)}}}")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def train(ctx: click.Context, family: str | None, args: tuple[str, ...]) -> None:
    """Train FAMILY; ARGS go to its script (`deepserve train digit --help` lists them). The run is a candidate
    unless it is the model's first: `deepserve promote` serves it."""
    if family in (None, "-h", "--help"):
        click.echo(ctx.get_help())
        return
    if family not in TRAINABLE:
        raise click.BadParameter(f"unknown family '{family}'; use one of: {', '.join(TRAINABLE)}", param_hint="FAMILY")
    spec = FAMILIES[family]
    if importlib.util.find_spec("training") is None:  # the serving package (and its image) carry no training code
        raise click.ClickException(
            "training is not installed here (make serve installs only the service): make test installs it, or "
            "pip install -e ./training"
        )
    missing = [m for m in EXTRA_MODULES.get(spec.extra, []) if importlib.util.find_spec(m) is None]
    if missing:
        raise click.ClickException(
            f"training {family} needs the [{spec.extra}] extra ({', '.join(missing)} missing): "
            f"pip install -e '.[{spec.extra}]'"
        )
    sys.exit(subprocess.call([sys.executable, "-m", spec.trainer, *args]))


@main.command()
@MODELS
@click.option("--json", "as_json", is_flag=True, help="One JSON object per artifact instead of a table.")
def models(models: Path, as_json: bool) -> None:
    """Every artifact in --models: which version is served (promoted), which are candidates, and the headline
    metric promotion compares."""
    manifest = read_manifest(models)
    for problem in manifest.problems:
        click.echo(f"unreadable: {problem}", err=True)
    served = {name: entry.version for name, entry in manifest.served().items()}
    rows: list[dict[str, Any]] = []
    for name in sorted({m.name for m in manifest.models}):
        for entry in manifest.versions(name):
            status = "served" if served.get(name) == entry.version else "candidate"
            value = metric(entry, headline(name))
            rows.append({
                "name": name, "version": entry.version, "status": status, "metric": headline(name),
                "value": value, "created": entry.created, "data": entry.data[:19],
            })  # fmt: skip
    if as_json:
        for row in rows:
            click.echo(json.dumps(row))
        return
    if not rows:
        click.echo(f"no models in {models} (train one: deepserve train digit)")
        return
    click.echo(f"{'name':<12} {'version':<8} {'status':<10} {'headline metric':<28} {'created':<21} data")
    for r in rows:
        score = f"{r['metric']} {'-' if r['value'] is None else format(r['value'], '.4f')}"
        click.echo(f"{r['name']:<12} {r['version']:<8} {r['status']:<10} {score:<28} {r['created']:<21} {r['data']}")


@main.command(name="promote")
@click.argument("name")
@click.argument("version")
@click.option("--force", is_flag=True, help="Promote even when its headline metric is worse.")
@MODELS
@click.option("--url", default=None, help="Load it in the service running there first (every process).")
@API_KEY
def promote_command(name: str, version: str, force: bool, models: Path, url: str | None, api_key: str | None) -> None:
    """Serve VERSION of NAME: refused when its headline metric is worse than the promoted version's. It is promoted
    only once it has loaded and warmed: in the service at --url (which then serves it), else in this process; a
    version that does not load changes nothing."""
    load, undo = service_steps(url, name, version, force, api_key) if url else (None, None)
    try:
        done = promote(models, name, version, force, load, undo)
    except (KeyError, PromotionRefused, PromotionFailed) as exc:
        raise click.ClickException(str(exc.args[0])) from exc
    change = f"{done.headline} {done.before} -> {done.after}" if done.previous else "first promotion"
    click.echo(f"promoted {name} v{version} (was v{done.previous}; {change})")
    if not url:
        click.echo("it loaded here; a running service picks it up on restart, or: deepserve promote ... --url URL")


def service_steps(
    url: str, name: str, version: str, force: bool, api_key: str | None
) -> tuple[Callable[[ManifestEntry], None], Callable[[], str]]:
    """A promotion's load in the running service (its reload of the version; `force` when --force) and its undo
    (a reload of the promoted version, which promoted.json still names when the promotion could not finish)."""
    reload = f"{url}/admin/models/{quote(name, safe='')}/reload"

    def load(entry: ManifestEntry) -> None:
        query = urlencode({"version": entry.version} | ({"force": "true"} if force else {}))
        try:
            body = call(f"{reload}?{query}", b"", "application/json", api_key)
        except Exception as exc:
            reason = exc.message if isinstance(exc, click.ClickException) else f"{type(exc).__name__}: {exc}"
            raise LoadRefused(f"the service at {url} did not load it ({reason})") from exc
        click.echo(f"loaded in the service at {url}: serving v{body['version']}")

    def undo() -> str:
        try:
            body = call(reload, b"", "application/json", api_key)
        except Exception as exc:
            reason = exc.message if isinstance(exc, click.ClickException) else f"{type(exc).__name__}: {exc}"
            return f"the service at {url} still serves v{version}: putting the promoted version back failed ({reason})"
        return f"the service at {url} serves v{body['version']} again"

    return load, undo


# `deepserve predict NAME`: a task's name asks for its default model, a model's (or a method's) name for that model.
TASK_NAMES: dict[str, Task[Any]] = {"sentiment": SENTIMENT, "anomaly": ANOMALY}


def resolve(name: str) -> tuple[Task[Any], dict[str, str]] | None:
    """The task NAME asks and what its request sends to pick the model (nothing: the task's default)."""
    if name in TASK_NAMES:
        return TASK_NAMES[name], {}
    if name in FAMILIES:
        task = TASKS[FAMILIES[name].task]
        return task, task.choose(name)
    for task in TASKS.values():
        if name in task.methods:  # e.g. "autoencoder": the anomaly family's method name
            return task, {task.selector: name}
    return None


def predict_names() -> list[str]:
    methods = [m for task in TASKS.values() for m in task.methods if m not in FAMILIES]
    return [*FAMILIES, *(n for n in TASK_NAMES if n not in FAMILIES), *methods]


@main.command()
@click.argument("name", metavar="NAME")
@click.argument("input")
@URL
@API_KEY
def predict(name: str, input: str, url: str, api_key: str | None) -> None:
    """Ask the running service. NAME is a task (sentiment, anomaly: its default model) or a model (digit, fashion,
    image, minilm, lstm, distilbert, nearest_context, autoencoder). INPUT is the text for sentiment, an image file for
    an image model, and for anomaly a file: JSON (a list of numbers, or a request like examples/series.json), or one
    value (or `timestamp,value`) per line."""
    resolved = resolve(name)
    if resolved is None:
        raise click.BadParameter(f"unknown name '{name}'; use one of: {', '.join(predict_names())}", param_hint="NAME")
    task, choice = resolved
    if task.request is None:  # an uploaded image
        media = mimetypes.guess_type(input)[0] or "application/octet-stream"
        route = f"{url}{task.path}" + (f"?{urlencode(choice)}" if choice else "")
        body = call(route, existing(input).read_bytes(), media, api_key)
    else:
        request = {"text": input} if task is SENTIMENT else series_request(existing(input))
        body = call(f"{url}{task.path}", json.dumps({**request, **choice}).encode(), None, api_key)
    click.echo(json.dumps(body, indent=2))


def existing(input: str) -> Path:
    if not Path(input).is_file():
        raise click.BadParameter(f"no such file: {input}", param_hint="INPUT")
    return Path(input)


def series_request(path: Path) -> dict[str, Any]:
    """The /predict/anomaly request a series file holds: a JSON request (`{"values": [...], "timestamps": ...}`), a
    JSON list of numbers, or lines of `value` or `timestamp,value` (a header line is skipped)."""
    text = path.read_text()
    if text.lstrip().startswith(("[", "{")):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise click.BadParameter(f"{path}: not valid JSON ({exc})", param_hint="INPUT") from exc
        if isinstance(data, dict) and "values" in data:
            return data
        if isinstance(data, list):
            return {"values": data}
        raise click.BadParameter(
            f"{path}: JSON must be a list of numbers or an object with 'values'", param_hint="INPUT"
        )
    values, timestamps, header = [], [], True
    for number, line in enumerate(text.splitlines(), 1):
        cells = [c.strip() for c in line.split(",") if c.strip()]
        if not cells:
            continue
        try:
            values.append(float(cells[-1]))
        except ValueError as exc:
            if not header:  # only the first line may be a header
                message = f"{path}, line {number}: not a number: {cells[-1]!r}"
                raise click.BadParameter(message, param_hint="INPUT") from exc
            header = False
            continue
        header = False
        if len(cells) > 1:
            timestamps.append(cells[0])
    return {"values": values} | ({"timestamps": timestamps} if timestamps and len(timestamps) == len(values) else {})


def call(url: str, data: bytes, content_type: str | None, api_key: str | None) -> dict:
    """POST and return the JSON answer; an error answer becomes one line with its type and message."""
    headers = {"content-type": content_type or "application/json"}
    if api_key:
        headers["x-api-key"] = api_key
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data, headers, method="POST"), timeout=60) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as exc:
        error = json.loads(exc.read() or b"{}").get("error", {})
        raise click.ClickException(f"{exc.code} {error.get('type')}: {error.get('message')}") from exc
    except urllib.error.URLError as exc:
        raise click.ClickException(f"no service at {url}: {exc.reason} (start one: deepserve serve)") from exc


if __name__ == "__main__":
    main()
