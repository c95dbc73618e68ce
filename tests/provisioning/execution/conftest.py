"""Launch execution tests: the AWS layer and the Kubernetes simulator with its control plane
running (scheduler, kubelets, controllers), the cloud bridge playing the instances' join scripts
(docs/node-join.md), the sandbox's pools with their launch templates, a Spark master on an admin
node, and helpers to make an approved Spark request and to drive its steps in this process."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from kubernetes.client.exceptions import ApiException

from clusterweb import clock
from clusterweb.integrations import aws as adapter
from provisioning.launches import execution, services
from provisioning.launches.models import LaunchRequest
from provisioning.models import Pool
from provisioning.services import pool_spec_clean, pools_store
from sandbox.kube import CloudBridge
from sandbox.kube.cluster import SPARK_NAMESPACE, spark_master_manifests
from sandbox.pools import launch_template_ensure, sandbox_pool_data
from sandbox.services.celery_worker import CeleryWorker
from tests.billing.conftest import spot_point, spot_record
from tests.fixtures.personas import user_for
from tests.fixtures.services import _worker_env
from tests.provisioning.conftest import Cloud

TIMEOUT = 20.0
IMAGE_ID = "ami-12c6146b"  # one of moto's built-in Amazon images


def pools_with_templates() -> dict[str, Pool]:
    """The sandbox's pools, the burst ones with a launch template each (as `sandbox_seed` makes
    them, minus its search of moto's image catalogue, which takes seconds; a launch brings its
    own user data)."""
    specs = [pool_spec_clean(d) for d in sandbox_pool_data("eu-west-1")]
    stored = [
        pool_spec_clean(
            {**spec.as_dict(), "launch_template_id": launch_template_ensure(spec, IMAGE_ID)}
        )
        if spec.kind == "burst"
        else spec
        for spec in specs
    ]
    pools_store(stored, username="test")
    return {pool.slug: pool for pool in Pool.objects.all()}


@dataclass
class Launches:
    cloud: Cloud
    bridge: CloudBridge
    pools: dict[str, Pool]
    alice: Any
    bob: Any

    def request(self, *, count: int = 2, hours: int = 2, **more: Any) -> LaunchRequest:
        """Bob's Spark request of ``count`` m5.xlarge spot workers, approved by alice."""
        values = {
            "requested_by": self.bob,
            "owner": self.bob,
            "kind": "spark",
            "pool": self.pools["spark"],
            "instance_type": "m5.xlarge",
            "count": count,
            "hours": hours,
            "capacity_type": "spot",
            "allow_on_demand_fallback": False,
            **more,
        }
        launch = services.request_launch(**values)
        if launch.state == "pending_approval":
            launch = services.approve(launch.pk, by=self.alice)
        assert launch.state == "approved"
        return launch

    def drive(
        self,
        request_id: int,
        until: Callable[[LaunchRequest], bool],
        *,
        timeout: float = TIMEOUT,
    ) -> LaunchRequest:
        """Run the request's steps here, as a worker would (waiting out each step's delay, at
        most 0.2 s), until ``until(request)``; fails after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            launch = LaunchRequest.objects.get(pk=request_id)
            if until(launch):
                return launch
            if time.monotonic() > deadline:
                steps = [(s.name, s.state, s.detail) for s in launch.steps.all()]
                raise AssertionError(f"request {request_id} is {launch.state}: {steps}")
            delay = execution.launch_advance(request_id=request_id)
            time.sleep(min(delay if delay is not None else 0.05, 0.2))

    def instances(self, request_id: int) -> list[adapter.InventoryInstance]:
        return adapter.request_instances("sandbox", str(request_id))


def state_is(*states: str) -> Callable[[LaunchRequest], bool]:
    return lambda launch: launch.state in states


def phase_is(phase: str) -> Callable[[LaunchRequest], bool]:
    def check(launch: LaunchRequest) -> bool:
        execution_row = getattr(launch, "execution", None)
        return execution_row is not None and execution_row.phase == phase

    return check


@pytest.fixture
def launches(cloud: Cloud, settings, alice, bob) -> Launches:
    kube = cloud.kube
    kube.controllers()
    bridge = kube.cloud_bridge("sandbox", aws_env=cloud.aws.env(), interval=0.1).start()
    pools = pools_with_templates()
    at = clock.now() - timedelta(minutes=30)
    spot_record(*(spot_point("m5.xlarge", "0.08", at, f"eu-west-1{zone}") for zone in "abc"))
    # The Spark master, on an admin node, as `make run` has it (sandbox/kube/cluster.py).
    kube.node("admin", labels={"clusterweb.io/pool": "admin"})
    with contextlib.suppress(ApiException):  # 409: the namespace exists already
        kube.core.create_namespace({"metadata": {"name": SPARK_NAMESPACE}})
    deployment, service = spark_master_manifests()
    kube.apps.create_namespaced_deployment(SPARK_NAMESPACE, deployment)
    kube.core.create_namespaced_service(SPARK_NAMESPACE, service)
    return Launches(cloud, bridge, pools, user_for(alice), user_for(bob))


class Workers:
    """Workers of this test, with the simulator's kubeconfig, consuming the launch steps' queue
    (tests route them there: tests/settings.py) as well as the default one."""

    def __init__(self, folder: Path, env: dict[str, str]) -> None:
        self.folder = folder
        self.env = env
        self.started: list[CeleryWorker] = []

    def start(self) -> CeleryWorker:
        worker = CeleryWorker(
            self.folder / f"worker-{len(self.started)}", self.env, queues="celery,launches"
        )
        self.started.append(worker)  # first: one that fails to answer is still stopped after
        return worker.start()

    def stop(self) -> None:
        for worker in self.started:
            worker.stop()


@pytest.fixture
def workers(launches, redis, tmp_path) -> Iterator[Workers]:
    env = {
        **_worker_env(),
        "REDIS_URL": settings.REDIS_URL,
        "CLUSTERWEB_TEST_KUBECONFIG": str(launches.cloud.kube.kubeconfig_path),
        "CLUSTER_NAME": "sandbox",
        "KUBE_REQUEST_TIMEOUT": "5",
        "S3_BUCKETS": "",
    }
    found = Workers(tmp_path, env)
    yield found
    found.stop()
