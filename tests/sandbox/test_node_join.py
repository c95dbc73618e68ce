"""Nodes join only as docs/node-join.md says: the cloud bridge runs an instance's user data as
its oracle. Without a well-formed join script, with an unknown, expired or wrong bootstrap token,
or with the wrong CA pin, an instance never becomes a Node, whatever its tags say; labels and
taints come only from the script.

Sources: "kubeadm join" (token discovery with --discovery-token-ca-cert-hash), "Authenticating
with Bootstrap Tokens" (the bootstrap.kubernetes.io/token Secret and its expiration), "kubeadm
token" (24 h default TTL), EC2 "Use the Instance Metadata Service" (IMDSv2).
"""

from __future__ import annotations

import base64
from datetime import datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.config import Config

from sandbox.kube.join import DEFAULT_TOKEN_TTL, new_token, token_secret_manifest
from sandbox.kube.resources import SECRETS
from tests.fixtures.kube import Kube
from tests.fixtures.services import instances_wait
from tests.sandbox.test_cloud_bridge import CLUSTER, REGION, describe, launch

pytestmark = pytest.mark.simulator_only

TIMEOUT = 10
EVERY_TAG = {
    "clusterweb:pool": "gpu",
    "clusterweb:owner": "bob",
    "clusterweb:request": "42",
    "Name": "gpu-1",
}


@pytest.fixture
def ec2(aws) -> Any:
    return boto3.client("ec2", region_name=REGION, config=Config(retries={"max_attempts": 1}))


@pytest.fixture(scope="module")
def image_id(moto_server) -> str:
    client = boto3.client("ec2", region_name=REGION)
    return client.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]


def _joined(kube: Kube, aws, instance_id: str) -> tuple[list[str], str]:
    """(node names, the bridge's problem for the instance) after one sync."""
    bridge = kube.cloud_bridge(CLUSTER, aws_env=aws.env())
    bridge.sync_once()
    names = [n.metadata.name for n in kube.core.list_node(_request_timeout=TIMEOUT).items]
    return names, bridge.problems.get(instance_id, "")


def test_a_tagged_gpu_spot_instance_without_a_join_script_never_becomes_a_node(
    kube: Kube, aws, ec2, image_id
) -> None:
    """Before: tags alone made a Ready GPU node with every label and no taint."""
    instance_id = launch(ec2, image_id, "g4dn.xlarge", spot=True, tags=EVERY_TAG)
    names, problem = _joined(kube, aws, instance_id)
    assert names == []
    assert problem == "no user data: nothing runs kubeadm join"


def test_eks_bootstrap_user_data_is_not_the_join_specification(
    kube: Kube, aws, ec2, image_id
) -> None:
    script = (
        "#!/bin/bash\n/etc/eks/bootstrap.sh cw-test --kubelet-extra-args "
        "'--node-labels=clusterweb.io/pool=gpu'\n"
    )
    instance_id = launch(ec2, image_id, user_data=script, tags=EVERY_TAG)
    names, problem = _joined(kube, aws, instance_id)
    assert names == []
    assert "set -euo pipefail" in problem


def test_an_unknown_token_never_joins(kube: Kube, aws, ec2, image_id) -> None:
    token = new_token()  # well-formed, never stored as a Secret
    instance_id = launch(ec2, image_id, user_data=kube.join_script(token=token), tags=EVERY_TAG)
    names, problem = _joined(kube, aws, instance_id)
    assert names == []
    assert f'for token ID "{token[:6]}"' in problem


def test_an_expired_token_never_joins(kube: Kube, aws, ec2, image_id) -> None:
    """kubeadm's tokens expire (24 h by default): past its expiration a token does not
    authenticate, and discovery fails as for an unknown one."""
    script = kube.join_script({"clusterweb.io/pool": "gpu"}, ttl=timedelta(seconds=-1))
    instance_id = launch(ec2, image_id, user_data=script, tags=EVERY_TAG)
    names, problem = _joined(kube, aws, instance_id)
    assert names == []
    assert "could not find a JWS signature" in problem


def test_a_token_with_the_wrong_secret_never_joins(kube: Kube, aws, ec2, image_id) -> None:
    assert kube.simulator is not None
    token = new_token()
    kube.simulator.store.seed([token_secret_manifest(token, None)])
    forged = token[:7] + ("a" if token[7] != "a" else "b") + token[8:]
    instance_id = launch(ec2, image_id, user_data=kube.join_script(token=forged))
    names, problem = _joined(kube, aws, instance_id)
    assert names == []
    assert "failed to verify JWS signature" in problem


def test_a_failed_join_stays_failed_when_the_token_appears_later(
    kube: Kube, aws, ec2, image_id
) -> None:
    """User data runs once, at first boot: a kubeadm join that failed is not tried again."""
    assert kube.simulator is not None
    token = new_token()
    instance_id = launch(ec2, image_id, user_data=kube.join_script(token=token))
    bridge = kube.cloud_bridge(CLUSTER, aws_env=aws.env())
    bridge.sync_once()
    kube.simulator.store.seed([token_secret_manifest(token, None)])
    bridge.sync_once()
    assert kube.core.list_node(_request_timeout=TIMEOUT).items == []
    assert instance_id in bridge.problems


def test_the_ca_pin_must_be_the_cluster_s(kube: Kube, aws, ec2, image_id) -> None:
    wrong = kube.join_script().rsplit("sha256:", 1)[0] + "sha256:" + "ab" * 32 + "\n"
    instance_id = launch(ec2, image_id, user_data=wrong)
    names, problem = _joined(kube, aws, instance_id)
    assert names == []
    assert "not signed by any of the public keys pinned" in problem


def test_a_script_naming_another_control_plane_endpoint_never_joins(
    kube: Kube, aws, ec2, image_id
) -> None:
    """kubeadm dials the endpoint the script names: nothing answers at a wrong one."""
    script = kube.join_script()
    endpoint = f"{kube.simulator.host}:{kube.simulator.port}"
    assert endpoint in script
    instance_id = launch(ec2, image_id, user_data=script.replace(endpoint, "10.0.0.1:6443"))
    names, problem = _joined(kube, aws, instance_id)
    assert names == []
    assert "no API server answers there" in problem


def test_a_disabled_metadata_service_never_joins(kube: Kube, aws, ec2, image_id) -> None:
    """The script reads its provider ID, type and zone from IMDS: with the endpoint disabled
    curl fails and set -e stops the script."""
    answer = ec2.run_instances(
        ImageId=image_id,
        InstanceType="t2.micro",
        MinCount=1,
        MaxCount=1,
        UserData=kube.join_script(),
        MetadataOptions={"HttpEndpoint": "disabled"},
        TagSpecifications=[
            {"ResourceType": "instance", "Tags": [{"Key": "clusterweb:cluster", "Value": CLUSTER}]}
        ],
    )
    instance_id = answer["Instances"][0]["InstanceId"]
    instances_wait(ec2, [instance_id], "running")
    names, problem = _joined(kube, aws, instance_id)
    assert names == []
    assert "metadata service is disabled" in problem


def test_a_provider_id_not_read_from_the_metadata_service_never_joins(
    kube: Kube, aws, ec2, image_id
) -> None:
    script = kube.join_script().replace(
        "--provider-id=aws:///${ZONE}/${INSTANCE_ID}", "--provider-id=aws:///eu-west-1a/i-1"
    )
    instance_id = launch(ec2, image_id, user_data=script)
    names, problem = _joined(kube, aws, instance_id)
    assert names == []
    assert f"--provider-id must be aws:///eu-west-1a/{instance_id}" in problem


def test_no_clusterweb_label_exists_that_is_not_in_the_user_data(
    kube: Kube, aws, ec2, image_id
) -> None:
    """Tags name the pool, owner and request, the instance is spot; the script names only the
    pool: the node has only that clusterweb.io label, and only the script's taints."""
    script = kube.join_script({"clusterweb.io/pool": "gpu"})
    instance_id = launch(ec2, image_id, "g4dn.xlarge", spot=True, user_data=script, tags=EVERY_TAG)
    names, problem = _joined(kube, aws, instance_id)
    assert problem == ""
    assert names == [describe(ec2, instance_id)["PrivateDnsName"]]
    node = kube.core.read_node(names[0], _request_timeout=TIMEOUT)
    ours = {k: v for k, v in node.metadata.labels.items() if k.startswith("clusterweb.io/")}
    assert ours == {"clusterweb.io/pool": "gpu"}
    assert node.metadata.labels["node.kubernetes.io/instance-type"] == "g4dn.xlarge"
    assert node.metadata.labels["topology.kubernetes.io/zone"] == "eu-west-1a"
    assert node.spec.provider_id == f"aws:///eu-west-1a/{instance_id}"
    assert not node.spec.taints


def test_the_minted_token_is_kubeadm_s_secret(kube: Kube) -> None:
    """The Secret format of "Authenticating with Bootstrap Tokens", expiring after 24 h."""
    assert kube.simulator is not None
    script = kube.join_script()
    token = script.split("--token ")[1].split()[0]
    secret = kube.core.read_namespaced_secret(
        f"bootstrap-token-{token[:6]}", "kube-system", _request_timeout=TIMEOUT
    )
    assert secret.type == "bootstrap.kubernetes.io/token"
    data = {k: base64.b64decode(v).decode() for k, v in secret.data.items()}
    assert (data["token-id"], data["token-secret"]) == (token[:6], token[7:])
    assert data["usage-bootstrap-authentication"] == data["usage-bootstrap-signing"] == "true"
    expires = datetime.fromisoformat(data["expiration"].replace("Z", "+00:00"))
    left = expires - kube.simulator.store.clock()
    assert DEFAULT_TOKEN_TTL - timedelta(seconds=5) < left <= DEFAULT_TOKEN_TTL
    listed = kube.simulator.store.list(SECRETS, "kube-system")
    assert [s["metadata"]["name"] for s in listed] == [f"bootstrap-token-{token[:6]}"]
