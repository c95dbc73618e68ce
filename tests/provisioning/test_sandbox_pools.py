"""The sandbox seed's pools: CONVENTIONS.md's table, each with a launch template created in the
simulated AWS through boto3; seeding twice creates nothing twice."""

from __future__ import annotations

import pytest

from clusterweb.integrations import aws as adapter
from provisioning.models import Pool
from sandbox.pools import sandbox_pools_seed

pytestmark = pytest.mark.django_db


def test_the_sandbox_pools_follow_the_conventions_table(aws):
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


def test_seeding_twice_creates_each_launch_template_once(aws):
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
