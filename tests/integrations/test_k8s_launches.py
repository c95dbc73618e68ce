"""The Kubernetes adapter's launch calls against the simulator: bootstrap token Secrets as kubeadm
writes them (create twice is one Secret; delete twice is fine), the join endpoint, pods with their
addresses."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from clusterweb.integrations import k8s
from sandbox.kube.join import JoinError, JoinRequest, check_token
from tests.fixtures.kube import Kube

pytestmark = pytest.mark.simulator_only

TOKEN = "abc123.0123456789abcdef"


@pytest.fixture
def cluster(kube: Kube):
    adapter = k8s.connect(str(kube.kubeconfig_path), request_timeout=5)
    yield adapter
    adapter.close()


def _secret(kube: Kube) -> dict[str, str]:
    secret = kube.core.read_namespaced_secret("bootstrap-token-abc123", "kube-system")
    return {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}


def test_a_bootstrap_token_is_the_secret_kubeadm_writes(kube: Kube, cluster) -> None:
    expiration = datetime(2031, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert cluster.bootstrap_token_create(TOKEN, expiration, description="launch 7") is True
    assert cluster.bootstrap_token_create(TOKEN, expiration) is False  # already there: success
    data = _secret(kube)
    assert data["token-id"] == "abc123"
    assert data["token-secret"] == "0123456789abcdef"
    assert data["expiration"] == "2031-01-02T03:04:05Z"
    assert data["usage-bootstrap-authentication"] == "true"
    assert data["usage-bootstrap-signing"] == "true"
    secret = kube.core.read_namespaced_secret("bootstrap-token-abc123", "kube-system")
    assert secret.type == "bootstrap.kubernetes.io/token"
    assert cluster.bootstrap_token_delete("abc123") is True
    assert cluster.bootstrap_token_delete("abc123") is False


def test_the_join_oracle_accepts_the_token_until_it_is_deleted(kube: Kube, cluster) -> None:
    assert kube.simulator is not None
    join = JoinRequest("h:6443", "abc123", "0123456789abcdef", "sha256:x", "")
    cluster.bootstrap_token_create(TOKEN, datetime(2031, 1, 1, tzinfo=UTC))
    check_token(kube.simulator.store, join)  # valid: no error
    cluster.bootstrap_token_delete("abc123")
    with pytest.raises(JoinError):
        check_token(kube.simulator.store, join)


def test_an_expired_token_no_longer_joins(kube: Kube, cluster) -> None:
    assert kube.simulator is not None
    join = JoinRequest("h:6443", "abc123", "0123456789abcdef", "sha256:x", "")
    cluster.bootstrap_token_create(TOKEN, datetime(2020, 1, 1, tzinfo=UTC))
    with pytest.raises(JoinError):
        check_token(kube.simulator.store, join)


def test_the_join_endpoint_is_the_api_server_the_client_talks_to(kube: Kube, cluster) -> None:
    assert kube.simulator is not None
    assert cluster.api_server_endpoint() == f"{kube.simulator.host}:{kube.simulator.port}"
