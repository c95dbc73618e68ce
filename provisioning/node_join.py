"""The user data that makes an EC2 instance join the cluster as a kubeadm node.

One function, :func:`join_script`, writes the script ``docs/node-join.md`` specifies: it reads
the instance's id, type and zone from the metadata service with IMDSv2 (a session token first),
hands the kubelet its ``--provider-id``, ``--node-labels`` and ``--register-with-taints``
through ``/etc/default/kubelet`` (which kubeadm's kubelet drop-in reads as
``KUBELET_EXTRA_ARGS``), then runs ``kubeadm join`` with a bootstrap token. Pure: no I/O, no
settings; the caller mints the token and knows the API server and its CA hash.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

# kubeadm's bootstrap token: "[a-z0-9]{6}.[a-z0-9]{16}" ("Authenticating with Bootstrap Tokens").
TOKEN_PATTERN = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
CA_HASH_PATTERN = re.compile(r"^sha256:[0-9a-f]{64}$")
_ENDPOINT = re.compile(r"^[A-Za-z0-9.-]+:[0-9]{1,5}$")
_TAINT = re.compile(r"^[^\s,=:]+(=[^\s,=:]*)?:(NoSchedule|PreferNoSchedule|NoExecute)$")
_SAFE = re.compile(r"^[A-Za-z0-9._/-]*$")  # label keys and values need no shell quoting

# Labels the script fills in from the metadata service (a kubelet may set these on itself).
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
ZONE_LABEL = "topology.kubernetes.io/zone"
FORMAT = 1


@dataclass(frozen=True)
class JoinSpec:
    api_server: str  # "10.0.1.10:6443": the control plane's endpoint
    token: str  # a bootstrap token, "abcdef.0123456789abcdef"
    ca_cert_hash: str  # "sha256:<hex>" of the cluster CA's public key
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: Sequence[str] = ()  # kubelet syntax: "key=value:Effect" or "key:Effect"


def join_script(spec: JoinSpec) -> str:
    """The user data script for ``spec`` (raises ValueError on a malformed field)."""
    if not _ENDPOINT.match(spec.api_server):
        raise ValueError(f"api_server must be host:port, not {spec.api_server!r}")
    if not TOKEN_PATTERN.match(spec.token):
        raise ValueError("token must be a bootstrap token: 6 and 16 characters [a-z0-9], a dot")
    if not CA_HASH_PATTERN.match(spec.ca_cert_hash):
        raise ValueError("ca_cert_hash must be sha256:<64 hex digits>")
    for key, value in spec.labels.items():
        if key in (INSTANCE_TYPE_LABEL, ZONE_LABEL):
            raise ValueError(f"{key} is read from the metadata service, not given")
        if not key or "," in key or "=" in key or not _SAFE.match(key) or not _SAFE.match(value):
            raise ValueError(f"label {key}={value} cannot be passed in --node-labels")
    for taint in spec.taints:
        if not _TAINT.match(taint) or not _SAFE.match(taint.replace("=", "").replace(":", "")):
            raise ValueError(f"taint {taint!r} is not key[=value]:Effect")
    labels = [f"{k}={v}" for k, v in sorted(spec.labels.items())]
    labels += [f"{INSTANCE_TYPE_LABEL}=${{INSTANCE_TYPE}}", f"{ZONE_LABEL}=${{ZONE}}"]
    flags = ["--provider-id=aws:///${ZONE}/${INSTANCE_ID}", "--node-labels=" + ",".join(labels)]
    if spec.taints:
        flags.append("--register-with-taints=" + ",".join(spec.taints))
    return "\n".join(
        [
            "#!/bin/bash",
            f"# Clusterweb node join, format {FORMAT} (docs/node-join.md).",
            "set -euo pipefail",
            'IMDS_TOKEN=$(curl -sSf -X PUT "http://169.254.169.254/latest/api/token" '
            '-H "X-aws-ec2-metadata-token-ttl-seconds: 300")',
            'imds() { curl -sSf -H "X-aws-ec2-metadata-token: ${IMDS_TOKEN}" '
            '"http://169.254.169.254/latest/meta-data/$1"; }',
            "INSTANCE_ID=$(imds instance-id)",
            "INSTANCE_TYPE=$(imds instance-type)",
            "ZONE=$(imds placement/availability-zone)",
            "cat > /etc/default/kubelet <<EOF",
            f'KUBELET_EXTRA_ARGS="{" ".join(flags)}"',
            "EOF",
            f"kubeadm join {spec.api_server} --token {spec.token} "
            f"--discovery-token-ca-cert-hash {spec.ca_cert_hash}",
            "",
        ]
    )
