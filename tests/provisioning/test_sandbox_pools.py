"""The sandbox seed's pools: CONVENTIONS.md's table, each with a launch template created in the
simulated AWS through boto3; seeding twice creates nothing twice."""

from __future__ import annotations

import base64

import pytest

from clusterweb.integrations import aws as adapter
from provisioning.models import Pool
from sandbox.kube.bridge import kubelet_flags
from sandbox.kube.join import check_token, read_join_script
from sandbox.pools import sandbox_pools_seed
from tests.fixtures.kube import Kube

pytestmark = pytest.mark.django_db


@pytest.fixture
def seeded_cluster(kube: Kube, settings) -> Kube:
    """The seed mints its bootstrap token in the cluster KUBECONFIG names."""
    settings.KUBE_CONFIG_PATH = str(kube.kubeconfig_path)
    return kube


def test_the_sandbox_pools_follow_the_conventions_table(aws, seeded_cluster):
    adapter.clients_clear()
    sandbox_pools_seed()

    table = {
        p.slug: (p.kind, p.instance_types[0], p.lifecycle, p.max_nodes, p.max_hours)
        for p in Pool.objects.all()
    }
    assert table == {
        "control": ("base", "t2.micro", "on-demand", 1, None),
        "admin": ("base", "t2.small", "on-demand", 2, None),
        "spark": ("burst", "t2.xlarge", "spot", 10, 48),
        "gpu": ("burst", "g4dn.xlarge", "spot", 2, 24),
        "jupyter": ("burst", "t2.xlarge", "spot", 5, 24),
    }
    assert Pool.objects.get(slug="spark").instance_types[-1] == "m5.12xlarge"
    assert Pool.objects.get(slug="gpu").taints == ["nvidia.com/gpu=present:NoSchedule"]


@pytest.mark.simulator_only
def test_every_launch_template_carries_its_pool_s_join_script(aws, seeded_cluster):
    """docs/node-join.md: the template's user data joins with a token the sandbox minted, and
    registers the pool's labels and taints (read by the bridge's oracle)."""
    assert seeded_cluster.simulator is not None
    adapter.clients_clear()
    sandbox_pools_seed()
    ec2 = adapter.client("ec2")
    metadata = {
        "instance-id": "i-0123456789abcdef0",
        "instance-type": "g4dn.xlarge",
        "placement/availability-zone": "eu-west-1a",
    }
    for pool in Pool.objects.all():
        version = ec2.describe_launch_template_versions(LaunchTemplateId=pool.launch_template_id)
        data = version["LaunchTemplateVersions"][0]["LaunchTemplateData"]
        script = base64.b64decode(data["UserData"]).decode()
        request = read_join_script(script, metadata)
        check_token(seeded_cluster.simulator.store, request)  # minted, not expired
        labels, taints = kubelet_flags(request.flags)
        assert {k: v for k, v in labels.items() if k.startswith("clusterweb.io/")} == pool.labels
        assert [f"{t['key']}={t['value']}:{t['effect']}" for t in taints] == pool.taints


def test_seeding_twice_creates_each_launch_template_once(aws, seeded_cluster):
    adapter.clients_clear()
    sandbox_pools_seed()
    first = dict(Pool.objects.values_list("slug", "launch_template_id"))

    sandbox_pools_seed()

    assert dict(Pool.objects.values_list("slug", "launch_template_id")) == first
    templates = adapter.client("ec2").describe_launch_templates()["LaunchTemplates"]
    assert sorted(t["LaunchTemplateName"] for t in templates) == sorted(
        f"clusterweb-{slug}" for slug in first
    )
    assert {t["LaunchTemplateId"] for t in templates} == set(first.values())
