"""A real JupyterHub for `make run` and the tests, spawning into the Kubernetes simulator.

See README.md. The product never imports this package.
"""

from sandbox.jupyterhub.harness import SCOPES, SERVICE_NAME, JupyterHubHarness
from sandbox.jupyterhub.profiles import PROFILE_LIST

__all__ = ["PROFILE_LIST", "SCOPES", "SERVICE_NAME", "JupyterHubHarness"]
