"""The product's join script generator (docs/node-join.md), checked against the sandbox's
oracle: whatever labels and taints a pool names, the script the generator writes makes the
kubelet register exactly those, plus the instance type and zone it reads from IMDSv2, with the
provider ID aws:///ZONE/ID."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from provisioning.node_join import JoinSpec, join_script
from sandbox.kube.bridge import kubelet_flags
from sandbox.kube.join import CA_CERT_HASH, JoinError, read_join_script

TOKEN = "abcdef.0123456789abcdef"
METADATA = {
    "instance-id": "i-0123456789abcdef0",
    "instance-type": "g4dn.xlarge",
    "placement/availability-zone": "eu-west-1b",
}


def _spec(**changes) -> JoinSpec:
    fields = {
        "api_server": "10.0.1.10:6443",
        "token": TOKEN,
        "ca_cert_hash": CA_CERT_HASH,
        "labels": {"clusterweb.io/pool": "gpu"},
        "taints": ["nvidia.com/gpu=present:NoSchedule"],
    }
    return JoinSpec(**{**fields, **changes})


def test_the_script_reads_imdsv2_and_runs_kubeadm_join() -> None:
    script = join_script(_spec())
    lines = script.splitlines()
    assert lines[0] == "#!/bin/bash"
    assert "set -euo pipefail" in lines
    assert any("-X PUT" in line and "/latest/api/token" in line for line in lines)
    assert "X-aws-ec2-metadata-token: ${IMDS_TOKEN}" in script
    assert lines[-1] == (
        f"kubeadm join 10.0.1.10:6443 --token {TOKEN} --discovery-token-ca-cert-hash {CA_CERT_HASH}"
    )
    request = read_join_script(script, METADATA)
    assert request.flags["provider-id"] == "aws:///eu-west-1b/i-0123456789abcdef0"
    assert (request.token_id, request.token_secret) == ("abcdef", "0123456789abcdef")
    labels, taints = kubelet_flags(request.flags)
    assert labels == {
        "clusterweb.io/pool": "gpu",
        "node.kubernetes.io/instance-type": "g4dn.xlarge",
        "topology.kubernetes.io/zone": "eu-west-1b",
    }
    assert taints == [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]


@pytest.mark.parametrize(
    "changes",
    [
        {"token": "abcdef0123456789abcdef"},
        {"token": "ABCDEF.0123456789abcdef"},
        {"api_server": "https://10.0.1.10:6443"},
        {"ca_cert_hash": "sha256:xyz"},
        {"labels": {"clusterweb.io/pool": "a,b"}},
        {"labels": {"clusterweb.io/pool": "$(reboot)"}},
        {"labels": {"node.kubernetes.io/instance-type": "m5.xlarge"}},
        {"taints": ["nvidia.com/gpu=present"]},
        {"taints": ["a:Sometimes"]},
    ],
)
def test_malformed_fields_are_refused(changes) -> None:
    with pytest.raises(ValueError):
        join_script(_spec(**changes))


def test_the_oracle_refuses_a_metadata_path_the_service_lacks() -> None:
    script = join_script(_spec()).replace("imds instance-type", "imds instance-kind")
    with pytest.raises(JoinError, match="404"):
        read_join_script(script, METADATA)


_NAME = st.from_regex(r"[a-z0-9]([a-z0-9._-]{0,20}[a-z0-9])?", fullmatch=True)
_VALUE = st.one_of(st.just(""), _NAME)


@hsettings(max_examples=60, deadline=None)
@given(
    labels=st.dictionaries(_NAME.map(lambda n: f"clusterweb.io/{n}"), _VALUE, max_size=5),
    taints=st.lists(
        st.tuples(_NAME, _VALUE, st.sampled_from(["NoSchedule", "PreferNoSchedule", "NoExecute"])),
        max_size=3,
        unique_by=lambda t: (t[0], t[2]),
    ),
)
def test_the_kubelet_registers_exactly_what_the_pool_names(labels, taints) -> None:
    written = [f"{k}={v}:{e}" if v else f"{k}:{e}" for k, v, e in taints]
    script = join_script(_spec(labels=labels, taints=written))
    got_labels, got_taints = kubelet_flags(read_join_script(script, METADATA).flags)
    assert got_labels == {
        **labels,
        "node.kubernetes.io/instance-type": "g4dn.xlarge",
        "topology.kubernetes.io/zone": "eu-west-1b",
    }
    expected = []
    for key, value, effect in taints:
        taint = {"key": key, "effect": effect}
        if value:
            taint["value"] = value
        expected.append(taint)
    assert got_taints == expected
