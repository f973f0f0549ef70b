"""Optional MLflow tracking (`--mlflow`): one MLflow run per setting and seed, the report as a summary run.

MLflow is not a dependency of the project: it is imported only when asked for.
"""

from __future__ import annotations

import os
from pathlib import Path

from training.experiments.studies import Config

INSTALL_HINT = "--mlflow needs MLflow: pip install mlflow-skinny (or pip install -e '.[tracking]')"


def require_mlflow():
    try:
        import mlflow
    except ImportError as e:
        raise SystemExit(INSTALL_HINT) from e
    return mlflow


class MlflowTracker:
    def __init__(self, uri: str, study: str) -> None:
        if uri.startswith("file:"):
            # MLflow 3.x keeps the file store (one folder, no database, nothing more to install) only on request.
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.mlflow = require_mlflow()
        self.mlflow.set_tracking_uri(uri)
        self.mlflow.set_experiment(f"deepserve-{study}")
        self.study = study

    def log_run(self, run: dict, config: Config) -> None:
        row = run["row"]
        with self.mlflow.start_run(run_name=f"{row['setting']} seed {row['seed']}"):
            self.mlflow.set_tags({"study": self.study, "setting": row["setting"]})
            self.mlflow.log_params({**vars(config), "seed": row["seed"]})
            for epoch in run["history"]:
                metrics = {k: v for k, v in epoch.items() if k not in ("setting", "seed", "epoch")}
                self.mlflow.log_metrics(metrics, step=epoch["epoch"])
            final = {k: float(v) for k, v in row.items() if k not in vars(config) and isinstance(v, int | float)}
            final.pop("seed", None)
            self.mlflow.log_metrics({f"final_{k}": v for k, v in final.items()})

    def log_study(self, out: Path) -> None:
        with self.mlflow.start_run(run_name="report"):
            self.mlflow.set_tags({"study": self.study, "setting": "report"})
            self.mlflow.log_artifacts(str(out))
