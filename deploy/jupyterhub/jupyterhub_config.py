# The JupyterHub configuration Clusterweb ships: KubeSpawner with the cluster's Jupyter profiles, a
# launch's server pinned to that launch's nodes, and a hub on which only Clusterweb starts servers.
#
# Load it either way (deploy/jupyterhub/README.md):
# - Zero to JupyterHub: the whole file as `hub.extraConfig.clusterweb` in values.yaml (z2jh runs
#   extraConfig after its own settings, with `c` in scope);
# - a plain hub: `jupyterhub -f deploy/jupyterhub/jupyterhub_config.py`.
# The sandbox runs exactly this file plus a small overlay (sandbox/jupyterhub/jupyterhub_config.py).
#
# Self-contained on purpose: an extraConfig snippet cannot import Clusterweb, so the constants that
# Clusterweb's JupyterHub adapter also knows (the user_options keys, the refusal messages) are
# written here and checked against the adapter by tests/deploy/test_jupyterhub_config.py.
# ruff: noqa: F821 - `c` is the config object jupyterhub (or z2jh's own config file) provides.
import os

from kubernetes_asyncio.client import V1Toleration
from tornado import web

CLUSTERWEB_SERVICE = "clusterweb"
# Where a plain hub reads the service's API token (z2jh: `hub.services.clusterweb.apiToken`).
CLUSTERWEB_TOKEN_ENV = "CLUSTERWEB_SERVICE_API_TOKEN"  # noqa: S105 - a variable's name
POOL_LABEL = "clusterweb.io/pool"
OWNER_LABEL = "clusterweb.io/owner"
REQUEST_LABEL = "clusterweb.io/request"
GPU_RESOURCE = "nvidia.com/gpu"
# The single-user image; the sandbox's kubelet runs its stand-in for exactly this image.
SINGLEUSER_IMAGE = "quay.io/jupyterhub/singleuser:5.3"
GPU_TOLERATION = {
    "key": GPU_RESOURCE,
    "operator": "Equal",
    "value": "present",
    "effect": "NoSchedule",
}

# -- spawning: KubeSpawner and the profiles of CONVENTIONS.md -------------------------------------
c.JupyterHub.spawner_class = "kubespawner.KubeSpawner"
c.JupyterHub.allow_named_servers = True
# A hub restart (an upgrade, a crash) must not stop the servers Clusterweb runs: their launches
# keep billing and Clusterweb alone decides when they stop (z2jh sets the same).
c.JupyterHub.cleanup_servers = False
c.KubeSpawner.image = SINGLEUSER_IMAGE
# User pods get no Kubernetes credentials: a notebook has no business with the API.
c.KubeSpawner.automount_service_account_token = False
# Sizes follow the pools' instance types: an admin node is a t2.small (1 vCPU, 2 GiB) shared with
# the control services, so `small` asks for little and is capped; a jupyter-pool node (t2.xlarge /
# m5.xlarge) and a GPU node (g4dn.xlarge / g5.xlarge), 4 vCPU and 16 GiB each, belong to one
# server, so `large` and `gpu` ask for most of it and leave room for the kubelet and daemonsets.
c.KubeSpawner.profile_list = [
    {
        "display_name": "Small: a shared admin node",
        "slug": "small",
        "description": "Up to 1 CPU and 1 GB, on the always-on admin nodes: no extra instance.",
        "default": True,
        "kubespawner_override": {
            "cpu_guarantee": 0.1,
            "cpu_limit": 1.0,
            "mem_guarantee": "256M",
            "mem_limit": "1G",
            "node_selector": {POOL_LABEL: "admin"},
        },
    },
    {
        "display_name": "Large: its own instance",
        "slug": "large",
        "description": "4 CPUs and 12 GB on an instance of the jupyter pool started for it.",
        "kubespawner_override": {
            "cpu_guarantee": 3.0,
            "cpu_limit": 4.0,
            "mem_guarantee": "12G",
            "mem_limit": "14G",
            "node_selector": {POOL_LABEL: "jupyter"},
        },
    },
    {
        "display_name": "GPU: its own GPU node",
        "slug": "gpu",
        "description": "One NVIDIA GPU, 4 CPUs and 12 GB on a GPU node started for it.",
        "kubespawner_override": {
            "cpu_guarantee": 3.0,
            "cpu_limit": 4.0,
            "mem_guarantee": "12G",
            "mem_limit": "14G",
            "node_selector": {POOL_LABEL: "gpu"},
            "tolerations": [GPU_TOLERATION],
            "extra_resource_limits": {GPU_RESOURCE: "1"},
        },
    },
]


# -- Clusterweb's user_options: `profile` and `request` -------------------------------------------
def _profile_slugs(spawner):
    return [p["slug"] for p in spawner.profile_list if isinstance(p, dict) and "slug" in p]


def _profile_node_selector(spawner, slug):
    """The node selector of the profile KubeSpawner will apply (the default one for "")."""
    profiles = [p for p in spawner.profile_list if isinstance(p, dict)]
    chosen = [p for p in profiles if p.get("slug") == slug] if slug else []
    chosen = chosen or [p for p in profiles if p.get("default")] or profiles[:1]
    if not chosen:
        return {}
    return dict((chosen[0].get("kubespawner_override") or {}).get("node_selector") or {})


def _request_id(value):
    """A launch request id as a label value: 1-63 of [A-Za-z0-9._-], alphanumeric at both ends."""
    text = str(value) if isinstance(value, str | int) and not isinstance(value, bool) else ""
    ok = 0 < len(text) <= 63 and text[0].isalnum() and text[-1].isalnum()
    if not ok or not all(ch.isalnum() or ch in "._-" for ch in text) or not text.isascii():
        raise web.HTTPError(400, "user_options.request must be a launch request id")
    return text


async def clusterweb_apply_user_options(spawner, user_options):
    """Check Clusterweb's options before anything starts (JupyterHub answers the start request
    with this hook's HTTPError): the profile must exist, and a launch request id must name a
    launch of the spawning user's.

    The hub cannot read Clusterweb's database, so ownership comes from the cluster: the nodes of a
    launch carry `clusterweb.io/request=ID` and `clusterweb.io/owner=UID` labels, which the join
    script registers from the instance's user data (CONVENTIONS.md) and which neither the user nor
    the hub can change. The hub lists them with its own identity (read-only `nodes` access, see
    README.md) and refuses unless at least one node has that request label and every such node's
    owner is the user. KubeSpawner applies the profile itself, later, in start().
    """
    options = user_options or {}
    slug = options.get("profile") or ""
    slugs = _profile_slugs(spawner)
    if not isinstance(slug, str) or (slug and slug not in slugs):
        raise web.HTTPError(400, f"Unknown profile {slug!r}: choose one of {', '.join(slugs)}")
    if options.get("request") is None:
        return
    request = _request_id(options["request"])
    try:
        nodes = await spawner.api.list_node(
            label_selector=f"{REQUEST_LABEL}={request}",
            _request_timeout=spawner.k8s_api_request_timeout,
        )
    except Exception as exc:
        # The API being unreachable or refusing says nothing about the launch: 503, which the
        # caller may retry (JupyterHub would answer any other exception as 400 "Invalid user
        # options", a permanent refusal).
        spawner.log.warning("Could not list the nodes of launch request %s: %r", request, exc)
        raise web.HTTPError(
            503, f"Could not check launch request {request}: the Kubernetes API failed"
        ) from exc
    owners = {(node.metadata.labels or {}).get(OWNER_LABEL) for node in nodes.items}
    user = spawner.user.name
    if not owners:
        raise web.HTTPError(
            403, f"Launch request {request} has no node in the cluster: it is not {user}'s"
        )
    if owners != {user}:
        raise web.HTTPError(403, f"Launch request {request} is not {user}'s")
    # The pod needs a node of the launch that the profile's selector also matches (a `large`
    # server on a gpu launch would wait Pending until the start timeout): refuse now instead.
    selector = _profile_node_selector(spawner, slug)
    labels = [node.metadata.labels or {} for node in nodes.items]
    if not any(all(lab.get(k) == v for k, v in selector.items()) for lab in labels):
        pools = ", ".join(sorted({str(lab.get(POOL_LABEL)) for lab in labels}))
        raise web.HTTPError(
            400,
            f"Launch request {request} has no node for profile {slug or 'default'!r}: "
            f"its nodes are in pool {pools}",
        )


def clusterweb_pin_to_launch(spawner, pod):
    """A server started for a launch runs only on that launch's nodes: a node selector on the
    launch's label and a toleration for its `clusterweb.io/request=ID:NoSchedule` taint, added to
    what the profile set (KubeSpawner applies profiles in start(), after the user_options hook,
    and a profile's tolerations replace the configured ones: hence a pod hook)."""
    request = (spawner.user_options or {}).get("request")
    if request is None:
        return pod
    request = _request_id(request)
    pod.spec.node_selector = {**(pod.spec.node_selector or {}), REQUEST_LABEL: request}
    toleration = V1Toleration(
        key=REQUEST_LABEL, operator="Equal", value=request, effect="NoSchedule"
    )
    pod.spec.tolerations = [*(pod.spec.tolerations or []), toleration]
    return pod


c.KubeSpawner.apply_user_options = clusterweb_apply_user_options
c.KubeSpawner.modify_pod_hook = clusterweb_pin_to_launch


# -- who may start servers: Clusterweb's service only --------------------------------------------
def _configured(name):
    """A list trait of JupyterHub's as configured so far (z2jh sets some before extraConfig)."""
    return list(c.JupyterHub[name]) if f"JupyterHub.{name}" in c else []


# Starting a server is spending money (a large or gpu profile is an instance), so it goes through
# Clusterweb's quotes and approvals. The default `user` role is JupyterHub's `self` without
# `servers` (start/stop) and without sharing: users read their own model and servers, open their
# servers, and make tokens that can do no more. Stopping is Clusterweb's too: a server stopped
# behind its back would leave its instance billing.
USER_ROLE = {
    "name": "user",
    "description": "Open and read one's own servers; Clusterweb starts and stops them.",
    "scopes": [
        "read:users!user",
        "users:activity!user",
        "read:servers!user",
        "access:servers!user",
        "tokens!user",
    ],
}
# What Clusterweb needs (clusterweb/integrations/jupyterhub.py): admin:users creates a user on
# first start (nothing narrower can); servers starts, stops and reads servers.
CLUSTERWEB_ROLE = {
    "name": CLUSTERWEB_SERVICE,
    "description": "Clusterweb: create users, start/stop/read their servers.",
    "scopes": ["admin:users", "servers"],
    "services": [CLUSTERWEB_SERVICE],
}
# The idle culler is off: Clusterweb decides when servers stop (time limits, idle policy,
# budget) and stops their instances with them; z2jh's culler (`cull.enabled`, on by default)
# would stop servers behind its back and leave the instances billing. A plain hub runs no
# culler; under z2jh this removes it: the service running jupyterhub_idle_culler (z2jh 2.0 and
# later name it `jupyterhub-idle-culler`, as its role; z2jh 1.x `cull-idle`), its role, and any
# mention of it in another role (the hub refuses to start with a role naming a missing service).
CULLER_MODULE = "jupyterhub_idle_culler"
CULLERS = {"jupyterhub-idle-culler", "cull-idle", "idle-culler"}


def _is_culler(service):
    command = " ".join(str(part) for part in service.get("command") or ())
    return service.get("name") in CULLERS or CULLER_MODULE in command.replace("-", "_")


_culling = {s.get("name") for s in _configured("services") if _is_culler(s)} | CULLERS
_services = [s for s in _configured("services") if s.get("name") not in _culling]
_token = os.environ.get(CLUSTERWEB_TOKEN_ENV, "")
if _token and not any(s.get("name") == CLUSTERWEB_SERVICE for s in _services):
    _services.append({"name": CLUSTERWEB_SERVICE, "api_token": _token})
c.JupyterHub.services = _services
_ours = {USER_ROLE["name"], CLUSTERWEB_SERVICE, *_culling}
_roles = [
    {**r, "services": [n for n in r["services"] if n not in _culling]} if r.get("services") else r
    for r in _configured("load_roles")
    if r.get("name") not in _ours
]
_roles.append(USER_ROLE)
if any(s.get("name") == CLUSTERWEB_SERVICE for s in _services):
    # A role naming a service the hub does not have stops the hub from starting.
    _roles.append(CLUSTERWEB_ROLE)
c.JupyterHub.load_roles = _roles
