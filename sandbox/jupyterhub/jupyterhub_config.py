# The sandbox hub's configuration, read by `jupyterhub -f`. Everything that changes per run (ports,
# the state directory, the service token, the kubeconfig) comes from the JSON file named by
# CLUSTERWEB_HUB_SETTINGS, which sandbox.jupyterhub.harness writes (mode 0600).
# ruff: noqa: F821 - `c` is the config object jupyterhub injects; `get_config` too.
import json
import os
import sys
from pathlib import Path

from sandbox.jupyterhub.harness import SCOPES, SERVICE_NAME

c = get_config()
s = json.loads(Path(os.environ["CLUSTERWEB_HUB_SETTINGS"]).read_text())
state = Path(s["state_dir"])

# -- network: loopback only, the ports the harness picked ------------------------------------------
c.JupyterHub.bind_url = f"http://127.0.0.1:{s['public_port']}"
c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{s['hub_port']}"
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{s['proxy_api_port']}"
# The pure-Python configurable-http-proxy from this venv (no node.js here).
c.ConfigurableHTTPProxy.command = [str(Path(sys.executable).with_name("configurable-http-proxy"))]
c.ConfigurableHTTPProxy.pid_file = str(state / "proxy.pid")
c.ConfigurableHTTPProxy.should_start = True

# -- state: all of it in the run's directory -------------------------------------------------------
c.JupyterHub.db_url = f"sqlite:///{state / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(state / "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = str(state / "jupyterhub.pid")
c.JupyterHub.cleanup_servers = True  # stopping the hub stops the servers and deletes their Pods
c.JupyterHub.log_level = s.get("log_level", "INFO")

# -- who may do what ---------------------------------------------------------------------------
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True
c.JupyterHub.allow_named_servers = True
c.JupyterHub.services = [{"name": SERVICE_NAME, "api_token": s["service_token"]}]
c.JupyterHub.load_roles = [
    {
        "name": SERVICE_NAME,
        "description": "What Clusterweb needs: create users, start/stop/read their servers.",
        "scopes": list(SCOPES),
        "services": [SERVICE_NAME],
    }
]

# -- spawning ------------------------------------------------------------------------------------
c.JupyterHub.spawner_class = "sandbox.jupyterhub.spawner.SimulatedKubeSpawner"
c.SimulatedKubeSpawner.kubeconfig = s["kubeconfig"]
c.SimulatedKubeSpawner.namespace = s["namespace"]
c.SimulatedKubeSpawner.home_dir_template = str(state / "home" / "{username}")
c.SimulatedKubeSpawner.controls_file = str(state / "controls.json")
c.SimulatedKubeSpawner.pod_ready_timeout = float(s.get("pod_ready_timeout", 0))
c.Spawner.start_timeout = int(s.get("start_timeout", 60))
c.Spawner.http_timeout = 15
# Notice a Pod deleted from outside (a lost spot node) within seconds, not the default 30.
c.Spawner.poll_interval = int(s.get("poll_interval", 5))
c.Spawner.env_keep = ["PATH", "PYTHONPATH", "LANG", "LC_ALL"]
# A POST .../server answers 201 when the server is up within this many seconds, else 202 and the
# caller polls: short, so the harness shows both paths.
c.JupyterHub.tornado_settings = {"slow_spawn_timeout": float(s.get("slow_spawn_timeout", 2))}
