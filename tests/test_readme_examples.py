"""The README's first examples run verbatim (bar the port) from the repository root against the committed models."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from app.config import Settings
from tests.support.paths import ROOT
from tests.support.service import uvicorn_client


def first_examples() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    block = readme.split("`examples/` holds inputs to try:", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.startswith("curl ")]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_the_readme_examples_answer_with_predictions() -> None:
    commands = first_examples()
    assert len(commands) >= 4 and all("examples/" in c or "-d '{" in c for c in commands)
    with uvicorn_client(Settings(models_dir=ROOT / "models")) as client:
        port = client.base_url.port
        for command in commands:
            command = re.sub(r"localhost:8000", f"127.0.0.1:{port}", command)
            done = subprocess.run(command, shell=True, cwd=ROOT, capture_output=True, text=True, timeout=60)
            body = json.loads(done.stdout)
            assert done.returncode == 0 and "error" not in body, (command, done.stdout[:300])
            assert {"digit", "label", "scores", "results"} & set(body), body  # a prediction, whichever endpoint
