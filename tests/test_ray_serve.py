"""DeepServe on Ray Serve over a local two-node cluster (app/http/ray_serve.py): requests spread over both replicas,
a replica killed mid-stream loses no request beyond those in flight and the engine brings a new one, and 1 vs 2
replicas' throughput is measured in the same run (reported, not asserted: speed targets live in bench/).

Needs the [ray] extra and runs only with DEEPSERVE_TEST_RAY=1 (`make test-ray`, 2-3 minutes here, which also runs
the contract tests against the Ray URL); CI does not install Ray, so there it is skipped.
"""

from __future__ import annotations

import pytest

from tests.support.paths import COMMITTED_MODELS
from tests.support.service import RAY

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not RAY, reason="opt-in: DEEPSERVE_TEST_RAY=1 (make test-ray)")]


def test_two_replicas_share_the_load_survive_a_killed_replica_and_are_measured_against_one(ray_cluster) -> None:
    from bench.ray_replicas import run_all

    out = run_all(ray_cluster, COMMITTED_MODELS, requests=120, concurrency=4)
    one, two = out["throughput"]
    print(f"\ndigit throughput: 1 replica {one:.1f} req/s, 2 replicas {two:.1f} req/s ({two / one:.2f}x)")
    print(f"spread: {dict(out['spread'])}")
    failover = out["failover"]
    print(failover.report())

    shares = out["spread"]
    assert len(shares) == 2 and min(shares.values()) >= 5, shares  # both replicas answer, on two nodes
    assert len({name.split("/")[0] for name in shares}) == 2  # node ids differ
    assert one > 0 and two > 0
    assert len(failover.failed) <= failover.in_flight_at_kill  # nothing lost beyond the requests then in flight
    assert failover.recovered_after_s is not None and failover.recovered_after_s < 120, failover.report()
    assert failover.replacement != failover.killed and failover.after_recovery_failed == 0
