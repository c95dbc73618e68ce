"""A real JupyterHub for `make run` and the tests: the configuration Clusterweb ships
(``deploy/jupyterhub/``, the real KubeSpawner) plus a small overlay, spawning into the Kubernetes
simulator.

See README.md. The product never imports this package.
"""

from sandbox.jupyterhub.harness import NAMESPACE, SCOPES, SERVICE_NAME, SHIPPED, JupyterHubHarness

__all__ = ["NAMESPACE", "SCOPES", "SERVICE_NAME", "SHIPPED", "JupyterHubHarness"]
