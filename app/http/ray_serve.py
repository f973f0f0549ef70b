"""DeepServe on Ray Serve: the FastAPI app (`create_app`) as the ingress of one deployment with N replicas, each
a Ray actor that loads and warms the models once, behind Ray Serve's HTTP proxy; and a local Ray cluster of two
nodes on loopback to run it on (`ray start --head` plus `ray start --address`), since Kubernetes cannot run here.

    python -m app.http.ray_serve --replicas 2 [--port 8000] [--models models]   # until Ctrl-C; `make ray-serve`

Each replica needs one CPU and at most one runs per node, so two replicas land on two nodes. Every response
names the replica that answered it in `X-DeepServe-Replica` (node/process/replica). The replicas read the same
DEEPSERVE_* settings as uvicorn (passed in their runtime environment). Ray is the `[ray]` extra; nothing else in
the service imports this module.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
REPLICA_HEADER = "x-deepserve-replica"
APP_NAME = "deepserve"
NODE_CPUS = 1  # each node offers one CPU: one replica per node, as one replica per machine would be
# Serve's proxy prefers replicas on its own node (and zone) while they have room: right across racks, but both
# nodes here are one host, so requests are spread over every replica instead (the proxy reads this at start).
SPREAD = {"RAY_SERVE_PROXY_PREFER_LOCAL_NODE_ROUTING": "0", "RAY_SERVE_PROXY_PREFER_LOCAL_AZ_ROUTING": "0"}
NODE_OBJECT_STORE = 80 * 2**20  # the app passes no large objects through Ray; the minimum Ray accepts is 75 MB


class ReplicaHeader:
    """ASGI middleware: every response says which replica answered it."""

    def __init__(self, app: Any, name: str) -> None:
        self.app, self.name = app, name.encode()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_named(message: Any) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (REPLICA_HEADER.encode(), self.name)]}
            await send(message)

        await self.app(scope, receive, send_named)


def build_app() -> Any:
    """The app one replica serves (Ray Serve calls this in the replica, which then runs its lifespan: models load)."""
    import ray
    from ray import serve

    from app.http.main import create_app

    app = create_app()
    node = ray.get_runtime_context().get_node_id()[:8]
    app.add_middleware(ReplicaHeader, name=f"{node}/{os.getpid()}/{serve.get_replica_context().replica_id.unique_id}")
    return app


def deployment(replicas: int, env: Mapping[str, str], max_ongoing_requests: int = 16) -> Any:
    """The bound Ray Serve application: `replicas` copies of the app, at most one per node, each with one CPU and
    the DEEPSERVE_* settings in `env`."""
    from ray import serve

    ingress = serve.ingress(build_app)()
    runtime_env = {"env_vars": {"PYTHONPATH": str(ROOT), **env}}
    return serve.deployment(
        ingress,
        name="DeepServe",
        num_replicas=replicas,
        max_replicas_per_node=1,
        max_ongoing_requests=max_ongoing_requests,
        ray_actor_options={"num_cpus": NODE_CPUS, "runtime_env": runtime_env},
        health_check_period_s=2,
        graceful_shutdown_timeout_s=5,
    ).bind()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LocalCluster:
    """Two Ray nodes on loopback (a head and a worker, each its own raylet and process group) and Serve's proxy."""

    address: str
    url: str
    nodes: list[subprocess.Popen]

    def run(self, replicas: int, env: Mapping[str, str], timeout: float = 300) -> set[str]:
        """Deploy (or redeploy) the app with `replicas` replicas; the names of the replicas that answered ready."""
        from ray import serve

        serve.run(deployment(replicas, env), name=APP_NAME, route_prefix="/", blocking=False)
        return wait_ready(self.url, replicas, timeout)


def wait_ready(url: str, replicas: int, timeout: float) -> set[str]:
    """Until /health/ready has answered 200 from `replicas` distinct replicas (each loaded its models); their
    names."""
    deadline, seen = time.monotonic() + timeout, set()
    while time.monotonic() < deadline:
        try:
            response = httpx.get(url + "/health/ready", timeout=10)
            if response.status_code == 200 and REPLICA_HEADER in response.headers:
                seen.add(response.headers[REPLICA_HEADER])
                if len(seen) >= replicas:
                    return seen
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"Ray Serve did not get {replicas} ready replicas within {timeout:.0f} s (saw {seen})")


def _start_node(args: list[str], log: Path, env: Mapping[str, str]) -> subprocess.Popen:
    command = [str(Path(sys.executable).with_name("ray")), "start", "--block", *args]
    command += [f"--num-cpus={NODE_CPUS}", f"--object-store-memory={NODE_OBJECT_STORE}", "--disable-usage-stats"]
    with log.open("wb") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def stop_node(node: subprocess.Popen) -> None:
    """End a node: its `ray start --block` and every process it started (its own process group)."""
    if node.poll() is None:
        os.killpg(node.pid, signal.SIGTERM)
        try:
            node.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(node.pid, signal.SIGKILL)  # anything of the group still there
    except ProcessLookupError:
        pass


@contextmanager
def local_cluster(port: int | None = None) -> Iterator[LocalCluster]:
    """Start a head and a worker node on loopback, connect this process as a driver and start Serve's proxy on the
    head only (both nodes are one host: one port). Everything is stopped on exit, by process group."""
    import ray
    from ray import serve

    gcs_port, http_port = free_port(), port or free_port()
    address = f"127.0.0.1:{gcs_port}"
    logs = Path(tempfile.mkdtemp(prefix="deepserve-ray-"))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0", **SPREAD}
    head_args = ["--head", "--node-ip-address=127.0.0.1", f"--port={gcs_port}", "--include-dashboard=false"]
    nodes = [_start_node(head_args, logs / "head.log", env)]
    try:
        _wait_for_nodes(address, 1, nodes, logs)
        nodes.append(_start_node([f"--address={address}", "--node-ip-address=127.0.0.1"], logs / "worker.log", env))
        _wait_for_nodes(address, 2, nodes, logs)
        ray.init(address=address, logging_level="WARNING", log_to_driver=False)
        serve.start(proxy_location="HeadOnly", http_options={"host": "127.0.0.1", "port": http_port})
        yield LocalCluster(address, f"http://127.0.0.1:{http_port}", nodes)
    finally:
        try:
            if ray.is_initialized():
                serve.shutdown()
                ray.shutdown()
        finally:
            for node in reversed(nodes):
                stop_node(node)


def _wait_for_nodes(address: str, count: int, nodes: list[subprocess.Popen], logs: Path, timeout: float = 120) -> None:
    status = [str(Path(sys.executable).with_name("ray")), "status", f"--address={address}"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(node.poll() is not None for node in nodes):
            raise RuntimeError(f"a Ray node exited; see {logs}")
        out = subprocess.run(status, capture_output=True, text=True, timeout=60).stdout
        if out.count("node_") >= count and "Active:" in out:
            active = out.split("Active:")[1].split("Pending:")[0]
            if active.count("node_") >= count:
                return
        time.sleep(1)
    raise TimeoutError(f"the Ray cluster did not reach {count} nodes; see {logs}")


def settings_env(models_dir: Path, **settings: str) -> dict[str, str]:
    return {"DEEPSERVE_MODELS_DIR": str(Path(models_dir).resolve()), **settings}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--replicas", type=int, default=2)
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--models", type=Path, default=ROOT / "models")
    args = p.parse_args()
    with local_cluster(args.port) as cluster:
        cluster.run(args.replicas, settings_env(args.models))
        print(f"DeepServe on Ray Serve: {args.replicas} replicas, 2 nodes, {cluster.url} (Ctrl-C stops)", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
