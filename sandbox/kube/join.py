"""The node join specification's oracle (``docs/node-join.md``), and bootstrap tokens.

The cloud bridge runs an instance's user data the way cloud-init and the tools it calls would,
for the one script shape the specification allows, and refuses anything else: a node joins
**only** through this script (``kubeadm join`` with a bootstrap token) and takes its labels and
taints **only** from the kubelet flags it writes. Written independently of the product's
generator (``provisioning/node_join.py``), which it checks.

Sources: kubeadm ("kubeadm join", "kubeadm token": tokens match ``[a-z0-9]{6}.[a-z0-9]{16}``,
expire after 24 h by default), "Authenticating with Bootstrap Tokens" (the
``bootstrap.kubernetes.io/token`` Secret ``bootstrap-token-<id>`` in ``kube-system`` with
``token-id``, ``token-secret``, ``expiration``, ``usage-bootstrap-authentication``,
``usage-bootstrap-signing``; an expired token is not valid for authentication and the token
cleaner deletes it), EC2 "Use the Instance Metadata Service" (IMDSv2: a PUT for a session token
with a TTL of 1 to 21600 seconds, then GETs carrying it), kubeadm's kubelet drop-in
(``EnvironmentFile=-/etc/default/kubelet`` giving ``KUBELET_EXTRA_ARGS``).
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .store import Store

TOKEN_TYPE = "bootstrap.kubernetes.io/token"
TOKEN_NAMESPACE = "kube-system"
DEFAULT_TOKEN_TTL = timedelta(hours=24)  # kubeadm token create's default --ttl
# The sandbox cluster's CA pin (what `kubeadm token create --print-join-command` prints as
# --discovery-token-ca-cert-hash). The simulator serves plain HTTP and has no CA: the pin is a
# fixed value, checked exactly, so a script pinning another cluster's CA does not join.
CA_CERT_HASH = "sha256:" + hashlib.sha256(b"clusterweb sandbox cluster CA").hexdigest()
_TOKEN = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
_TOKEN_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
_CA_HASH = re.compile(r"^sha256:[0-9a-f]{64}$")
_ENDPOINT = re.compile(r"^[A-Za-z0-9.-]+:([0-9]{1,5})$")

_IMDS = "http://169\\.254\\.169\\.254/latest"
_HEADER = [
    ("#!/bin/bash", "the script must start with #!/bin/bash"),
    ("set -euo pipefail", "the script must `set -euo pipefail`"),
]
_IMDS_TOKEN = re.compile(
    r'^IMDS_TOKEN=\$\(curl -sSf -X PUT "' + _IMDS + r'/api/token" '
    r'-H "X-aws-ec2-metadata-token-ttl-seconds: ([0-9]+)"\)$'
)
_IMDS_FUNCTION = re.compile(
    r'^imds\(\) \{ curl -sSf -H "X-aws-ec2-metadata-token: \$\{IMDS_TOKEN\}" '
    r'"' + _IMDS + r'/meta-data/\$1"; \}$'
)
_ASSIGNMENT = re.compile(r"^([A-Z][A-Z0-9_]*)=\$\(imds ([a-z0-9/-]+)\)$")
_HEREDOC = "cat > /etc/default/kubelet <<EOF"
_EXTRA_ARGS = re.compile(r'^KUBELET_EXTRA_ARGS="([^"]*)"$')
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")
_JOIN = re.compile(r"^kubeadm join (\S+)((?: \S+)*)$")


class JoinError(ValueError):
    """The script, run on the instance, would not make it a node (the message says why)."""


@dataclass
class JoinRequest:
    """What a well-formed script asks for, with the metadata values filled in."""

    api_server: str
    token_id: str
    token_secret: str
    ca_cert_hash: str
    kubelet_args: str  # KUBELET_EXTRA_ARGS, variables expanded
    flags: dict[str, str] = field(default_factory=dict)  # kubelet flag name -> value


def read_join_script(text: str, metadata: Mapping[str, str]) -> JoinRequest:
    """Run ``text`` against the instance's metadata (paths such as ``instance-id``,
    ``instance-type``, ``placement/availability-zone``), as far as the specification goes.
    Raises :class:`JoinError` for anything else: no script, another shape, a metadata path the
    service does not have, a variable never set (``set -u``), a malformed join command."""
    if not text.strip():
        raise JoinError("no user data: nothing runs kubeadm join")
    lines = [line.rstrip() for line in text.splitlines()]
    body = [line for line in lines[1:] if line.strip() and not line.lstrip().startswith("#")]
    if lines[0] != _HEADER[0][0]:
        raise JoinError(_HEADER[0][1])
    steps = iter(body)

    def next_line(what: str) -> str:
        line = next(steps, None)
        if line is None:
            raise JoinError(f"the script ends before {what}")
        return line

    if next_line("set -euo pipefail") != _HEADER[1][0]:
        raise JoinError(_HEADER[1][1])
    match = _IMDS_TOKEN.match(next_line("the IMDSv2 token request"))
    if not match:
        raise JoinError("the metadata service must be asked for an IMDSv2 session token first")
    if not 1 <= int(match.group(1)) <= 21600:
        # IMDS answers 400 for a TTL outside 1..21600 seconds; curl -f fails, set -e stops.
        raise JoinError("IMDSv2 token TTL must be 1 to 21600 seconds (the service answers 400)")
    if not _IMDS_FUNCTION.match(next_line("the metadata reader")):
        raise JoinError("metadata must be read with the IMDSv2 token header")
    variables: dict[str, str] = {}
    line = next_line("the kubelet's arguments")
    while (assignment := _ASSIGNMENT.match(line)) is not None:
        name, path = assignment.groups()
        if path not in metadata:
            raise JoinError(f"metadata path {path!r}: 404 Not Found (curl -f fails)")
        variables[name] = metadata[path]
        line = next_line("the kubelet's arguments")
    if line != _HEREDOC:
        raise JoinError("the kubelet's arguments must be written to /etc/default/kubelet")
    extra = _EXTRA_ARGS.match(next_line("KUBELET_EXTRA_ARGS"))
    if not extra:
        raise JoinError('/etc/default/kubelet must hold one line KUBELET_EXTRA_ARGS="..."')
    if next_line("EOF") != "EOF":
        raise JoinError("/etc/default/kubelet must be one line, then EOF")

    def expand(found: re.Match[str]) -> str:
        name = found.group(1) or found.group(2)
        if name not in variables:
            raise JoinError(f"{name}: unbound variable (set -u)")
        return variables[name]

    kubelet_args = _VARIABLE.sub(expand, extra.group(1))
    flags: dict[str, str] = {}
    for word in kubelet_args.split():
        name, sep, value = word.partition("=")
        if not name.startswith("--") or not sep:
            raise JoinError(f"kubelet argument {word!r}: want --flag=value")
        flags[name[2:]] = value
    join = _JOIN.match(next_line("kubeadm join"))
    if not join:
        raise JoinError("the script must end with `kubeadm join HOST:PORT --token ...`")
    if next(steps, None) is not None:
        raise JoinError("nothing may follow kubeadm join")
    endpoint = join.group(1)
    port = _ENDPOINT.match(endpoint)
    if not port or not 1 <= int(port.group(1)) <= 65535:
        raise JoinError(f"kubeadm join: {endpoint!r} is not HOST:PORT")
    options: dict[str, str] = {}
    words = join.group(2).split()
    while words:
        word = words.pop(0)
        name, sep, value = word.partition("=")
        if name not in ("--token", "--discovery-token-ca-cert-hash"):
            raise JoinError(f"kubeadm join: unknown flag: {name}")
        if not sep:
            if not words:
                raise JoinError(f"kubeadm join: flag needs an argument: {name}")
            value = words.pop(0)
        options[name] = value
    token = options.get("--token", "")
    found = _TOKEN.match(token)
    if not found:
        raise JoinError(
            f'kubeadm join: the bootstrap token "{token}" was not of the form '
            '"[a-z0-9]{6}.[a-z0-9]{16}"'
        )
    ca_hash = options.get("--discovery-token-ca-cert-hash", "")
    if not _CA_HASH.match(ca_hash):
        # kubeadm refuses token discovery without a CA pin unless
        # --discovery-token-unsafe-skip-ca-verification, which the specification does not allow.
        raise JoinError("kubeadm join: --discovery-token-ca-cert-hash sha256:<hex> is required")
    if ca_hash != CA_CERT_HASH:
        raise JoinError(
            "kubeadm join: cluster CA found in cluster-info ConfigMap is not signed by any of "
            "the public keys pinned"
        )
    return JoinRequest(endpoint, found.group(1), found.group(2), ca_hash, kubelet_args, flags)


# -- bootstrap tokens ----------------------------------------------------------------------------


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def token_secret_manifest(token: str, expiration: datetime | None) -> dict[str, Any]:
    """The Secret ``kubeadm token create`` writes for ``token`` ("Authenticating with
    Bootstrap Tokens › Bootstrap Token Secret Format"); no expiration for ``--ttl 0``."""
    found = _TOKEN.match(token)
    if not found:
        raise ValueError("not a bootstrap token")
    token_id, token_secret = found.groups()
    data = {
        "token-id": token_id,
        "token-secret": token_secret,
        "usage-bootstrap-authentication": "true",
        "usage-bootstrap-signing": "true",
        "auth-extra-groups": "system:bootstrappers:kubeadm:default-node-token",
        "description": "Clusterweb sandbox node join token",
    }
    if expiration is not None:
        data["expiration"] = expiration.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": f"bootstrap-token-{token_id}", "namespace": TOKEN_NAMESPACE},
        "type": TOKEN_TYPE,
        "data": {key: _b64(value) for key, value in data.items()},
    }


def new_token() -> str:
    pick = "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(22))
    return f"{pick[:6]}.{pick[6:]}"


def mint_token(store: Store, ttl: timedelta | None = DEFAULT_TOKEN_TTL) -> str:
    """``kubeadm token create --ttl``: a fresh token, stored as its Secret; ``ttl=None`` never
    expires (``--ttl 0``). Expiry counts from the store's clock."""
    token = new_token()
    expiration = store.clock() + ttl if ttl is not None else None
    store.seed([token_secret_manifest(token, expiration)])
    return token


def check_token(store: Store, request: JoinRequest) -> None:
    """Raise :class:`JoinError` unless the request's token authenticates now: its Secret
    exists, matches, is usable for signing (discovery) and authentication (the kubelet's TLS
    bootstrap), and has not expired."""
    from .resources import SECRETS

    entry = store.peek(SECRETS, TOKEN_NAMESPACE, f"bootstrap-token-{request.token_id}")
    unknown = JoinError(
        "kubeadm join: couldn't validate the identity of the API Server: could not find a JWS "
        f'signature in the cluster-info ConfigMap for token ID "{request.token_id}"'
    )
    if entry is None or entry.obj.get("type") != TOKEN_TYPE:
        raise unknown
    try:
        data = {k: base64.b64decode(v).decode() for k, v in (entry.obj.get("data") or {}).items()}
    except (ValueError, UnicodeDecodeError):
        raise unknown from None
    if data.get("token-id") != request.token_id or data.get("usage-bootstrap-signing") != "true":
        raise unknown
    if data.get("token-secret") != request.token_secret:
        raise JoinError(
            "kubeadm join: couldn't validate the identity of the API Server: failed to verify "
            "JWS signature of received cluster info object, can't trust this API Server"
        )
    expiration = data.get("expiration", "")
    if expiration:
        try:
            expires = datetime.fromisoformat(expiration.replace("Z", "+00:00"))
        except ValueError:
            raise unknown from None
        if expires <= store.clock():
            # The signer drops expired tokens' signatures from cluster-info (and the token
            # cleaner deletes the Secret), so discovery fails as for an unknown token.
            raise unknown
    if data.get("usage-bootstrap-authentication") != "true":
        raise JoinError(
            "kubelet: cannot create certificate signing request: Unauthorized (the token is "
            "not for authentication)"
        )
