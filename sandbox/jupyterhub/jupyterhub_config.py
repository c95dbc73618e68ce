# The sandbox's hub: exactly the configuration Clusterweb ships (deploy/jupyterhub/), then this
# overlay, which sets only what differs on a laptop: loopback ports and URLs, where the hub keeps
# its state, the dummy authenticator, the namespace (in a cluster KubeSpawner reads it from the
# hub's ServiceAccount) and the spawn timings. tests/sandbox/jupyterhub/test_overlay.py fails if it
# changes any trait outside the allow-list, sandbox.jupyterhub.harness.OVERLAY_TRAITS.
#
# Per-run values come from the JSON file named by CLUSTERWEB_HUB_SETTINGS (written mode 0600 by
# sandbox.jupyterhub.harness). The hub reaches the Kubernetes simulator through KUBECONFIG (the
# hub's own identity; kubernetes_asyncio reads it) and gets Clusterweb's service token from
# CLUSTERWEB_SERVICE_API_TOKEN, as a plain `jupyterhub -f` deployment would: both are environment
# variables the harness sets, not traits.
# ruff: noqa: F821 - `c` and `load_subconfig` are provided by jupyterhub's config loader.
import json
import os
import sys
from pathlib import Path

SHIPPED = Path(__file__).resolve().parents[2] / "deploy" / "jupyterhub" / "jupyterhub_config.py"
load_subconfig(str(SHIPPED))

s = json.loads(Path(os.environ["CLUSTERWEB_HUB_SETTINGS"]).read_text())
state = Path(s["state_dir"])

# -- ports and URLs ------------------------------------------------------------------------------
c.JupyterHub.bind_url = f"http://127.0.0.1:{s['public_port']}"
c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{s['hub_port']}"
# What the single-user servers (loopback processes at their pods' 127.x.y.z addresses) call.
c.JupyterHub.hub_connect_url = f"http://127.0.0.1:{s['hub_port']}"
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{s['proxy_api_port']}"
c.ConfigurableHTTPProxy.command = [str(Path(sys.executable).with_name("configurable-http-proxy"))]
c.ConfigurableHTTPProxy.pid_file = str(state / "proxy.pid")
c.ConfigurableHTTPProxy.should_start = True

# -- paths -----------------------------------------------------------------------------------------
c.JupyterHub.db_url = f"sqlite:///{state / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(state / "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = str(state / "jupyterhub.pid")
c.JupyterHub.log_level = s.get("log_level", "INFO")

# -- who logs in -----------------------------------------------------------------------------------
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True

# -- where pods go, and how long spawns may take ---------------------------------------------------
c.KubeSpawner.namespace = s["namespace"]
c.KubeSpawner.start_timeout = int(s["start_timeout"])
c.KubeSpawner.http_timeout = int(s["http_timeout"])
# Notice a pod deleted from outside (a lost spot node) within seconds, not the default 30.
c.KubeSpawner.poll_interval = int(s["poll_interval"])
# A POST .../server answers 201 when the server is up within this many seconds, else 202 and the
# caller polls: short, so the tests see both paths.
c.JupyterHub.tornado_settings = {"slow_spawn_timeout": float(s["slow_spawn_timeout"])}
