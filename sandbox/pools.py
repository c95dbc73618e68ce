"""The sandbox's node pools (CONVENTIONS.md's table) and their EC2 launch templates.

Production pools differ, so they are not a migration: `sandbox_seed` calls
:func:`sandbox_pools_seed`, which creates the launch templates in the simulated AWS through
boto3 (found by name first, created with a ClientToken: running it twice creates nothing twice)
and stores the pools with their template ids. Each template's user data is the pool's join
script (``docs/node-join.md``, written by ``provisioning.node_join``) with a bootstrap token the
sandbox mints in the cluster the ``KUBECONFIG`` setting names (an admin's: `make run` runs the
seed with the set-up identity), valid for kubeadm's default 24 h.
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import urlsplit

from botocore.exceptions import ClientError
from django.conf import settings

from clusterweb import clock
from clusterweb.integrations import aws
from provisioning.models import Pool
from provisioning.node_join import JoinSpec, join_script
from provisioning.services import PoolSpec, pool_spec_clean, pools_store
from sandbox.kube.join import (
    CA_CERT_HASH,
    DEFAULT_TOKEN_TTL,
    TOKEN_NAMESPACE,
    new_token,
    token_secret_manifest,
)

SPARK_TYPES = ["t2.xlarge", "m5.xlarge", "m5.2xlarge", "m5.4xlarge", "m5.8xlarge", "m5.12xlarge"]
GPU_TAINT = "nvidia.com/gpu=present:NoSchedule"


def sandbox_pool_data(region: str) -> list[dict[str, Any]]:
    every_zone = [f"{region}{suffix}" for suffix in "abc"]

    def pool(slug: str, kind: str, types: list[str], lifecycle: str, **more: Any) -> dict:
        return {
            "slug": slug,
            "kind": kind,
            "instance_types": types,
            "lifecycle": lifecycle,
            "labels": {"clusterweb.io/pool": slug, "clusterweb.io/capacity-type": lifecycle},
            "launch_template_name": f"clusterweb-{slug}",
            **more,
        }

    return [
        # The always-on part: the control node and the two admin nodes, in one zone (their EBS
        # volumes live there).
        pool("control", "base", ["t2.micro"], "on-demand", max_nodes=1, zones=[f"{region}a"]),
        pool("admin", "base", ["t2.small"], "on-demand", max_nodes=2, zones=[f"{region}a"]),
        # Burst pools: spot by default. Spark and Jupyter may fall back to on-demand when spot
        # capacity is short (a few cents more for a job that must run); GPU may not: an
        # on-demand GPU node costs three times its spot price, so the admin decides that case.
        pool("spark", "burst", SPARK_TYPES, "spot", on_demand_fallback=True, max_nodes=10,
             max_hours=48, zones=every_zone),
        pool("gpu", "burst", ["g4dn.xlarge", "g5.xlarge"], "spot", max_nodes=2, max_hours=24,
             zones=every_zone, taints=[GPU_TAINT]),
        pool("jupyter", "burst", ["t2.xlarge", "m5.xlarge"], "spot", on_demand_fallback=True,
             max_nodes=5, max_hours=24, zones=every_zone),
    ]  # fmt: skip


def join_token_mint() -> tuple[str, str]:
    """(API server endpoint, token): a fresh bootstrap token stored as its Secret in the
    cluster ``settings.KUBE_CONFIG_PATH`` names, as ``kubeadm token create`` does."""
    from kubernetes import client, config

    api = config.new_client_from_config(settings.KUBE_CONFIG_PATH)
    try:
        token = new_token()
        manifest = token_secret_manifest(token, clock.now() + DEFAULT_TOKEN_TTL)
        client.CoreV1Api(api).create_namespaced_secret(
            TOKEN_NAMESPACE, manifest, _request_timeout=settings.KUBE_REQUEST_TIMEOUT
        )
        server = urlsplit(api.configuration.host)
        endpoint = f"{server.hostname}:{server.port or 443}"
    finally:
        api.close()
    return endpoint, token


def pool_user_data(spec: PoolSpec, api_server: str, token: str) -> str:
    """The pool's join script: its labels and taints, the token, the sandbox's CA pin."""
    return join_script(
        JoinSpec(
            api_server=api_server,
            token=token,
            ca_cert_hash=CA_CERT_HASH,
            labels=spec.labels,
            taints=spec.taints,
        )
    )


def launch_template_ensure(spec: PoolSpec, image_id: str, user_data: str = "") -> str:
    """The id of the pool's launch template, created if no template has its name."""
    ec2 = aws.client("ec2")
    with aws.translated():
        try:
            found = ec2.describe_launch_templates(LaunchTemplateNames=[spec.launch_template_name])
            return found["LaunchTemplates"][0]["LaunchTemplateId"]
        except ClientError as exc:
            if "NotFound" not in str(exc.response.get("Error", {}).get("Code", "")):
                raise
        tags = [
            {"Key": "clusterweb:cluster", "Value": settings.CLUSTER_NAME},
            {"Key": "clusterweb:pool", "Value": spec.slug},
        ]
        created = ec2.create_launch_template(
            LaunchTemplateName=spec.launch_template_name,
            ClientToken=f"clusterweb-pool-{spec.slug}",
            LaunchTemplateData={
                "ImageId": image_id,
                "InstanceType": spec.instance_types[0],
                "MetadataOptions": {"HttpTokens": "required"},
                **(
                    {"UserData": base64.b64encode(user_data.encode()).decode()} if user_data else {}
                ),
                "TagSpecifications": [
                    {"ResourceType": "instance", "Tags": tags},
                    {"ResourceType": "volume", "Tags": tags},
                ],
            },
            TagSpecifications=[{"ResourceType": "launch-template", "Tags": tags}],
        )
    return created["LaunchTemplate"]["LaunchTemplateId"]


def sandbox_pools_seed() -> list[Pool]:
    """Store the sandbox pools, each with its launch template in the simulated AWS."""
    region = settings.AWS_REGION
    specs = [pool_spec_clean(data) for data in sandbox_pool_data(region)]
    with aws.translated():
        images = aws.client("ec2").describe_images(Owners=["amazon"])["Images"]
    image_id = sorted(i["ImageId"] for i in images)[0]
    api_server, token = join_token_mint()
    stored = []
    for spec in specs:
        template_id = launch_template_ensure(
            spec, image_id, pool_user_data(spec, api_server, token)
        )
        stored.append(pool_spec_clean({**spec.as_dict(), "launch_template_id": template_id}))
    pools_store(stored, username="sandbox")
    return list(Pool.objects.filter(slug__in=[s.slug for s in stored]))
