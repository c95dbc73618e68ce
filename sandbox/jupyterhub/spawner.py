"""The sandbox's spawner: a local stand-in process for the notebook, and the Pod KubeSpawner would
have created, in the Kubernetes simulator.

It runs inside the JupyterHub process (``c.JupyterHub.spawner_class``). What Clusterweb sees is what
it would see with KubeSpawner on a real cluster:

- the profile comes from ``user_options["profile"]`` and is applied from ``profile_list`` entries'
  ``kubespawner_override`` (an unknown one is refused with 400 before anything starts);
- ``user_options["request"]``, a launch request id, pins the server to that launch's nodes (node
  selector and toleration for ``clusterweb.io/request``);
- the Pod is named, labelled and sized like KubeSpawner's, in the ``jupyter`` namespace, created
  before the server starts and deleted (and waited for) when it stops;
- a Pod deleted from outside (a node lost to a spot interruption) makes the next poll report the
  server dead, as KubeSpawner's poll does.

Unlike KubeSpawner, ``start`` does not wait for the Pod to run unless ``pod_ready_timeout`` is set:
the simulator binds and runs pods only when its scheduler and kubelet controllers are running.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from jupyterhub import __version__ as HUB_VERSION
from jupyterhub.spawner import SimpleLocalProcessSpawner
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from tornado import web
from traitlets import Dict, Float, List, Unicode, default

from sandbox.jupyterhub import profiles
from sandbox.kube.selectors import is_label_value

STANDIN = Path(__file__).with_name("singleuser.py")

_api_clients: dict[str, client.ApiClient] = {}


def request_id_valid(request: Any) -> bool:
    """A launch request id goes in a label: a non-empty label value (selectors.is_label_value)."""
    return isinstance(request, str | int) and str(request) != "" and is_label_value(str(request))


def _core(kubeconfig: str) -> client.CoreV1Api:
    """One ApiClient per kubeconfig for the hub process (its pool is thread-safe)."""
    if kubeconfig not in _api_clients:
        _api_clients[kubeconfig] = config.new_client_from_config(kubeconfig)
    return client.CoreV1Api(_api_clients[kubeconfig])


def _die_with_hub() -> None:
    # PR_SET_PDEATHSIG: a hub killed without cleanup takes its stand-ins with it.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


class SimulatedKubeSpawner(SimpleLocalProcessSpawner):
    """KubeSpawner's contract on a local process plus a Pod in the Kubernetes simulator."""

    kubeconfig = Unicode("", config=True, help="Kubeconfig of the cluster the Pods go to.")
    namespace = Unicode(profiles.NAMESPACE, config=True, help="Namespace of the Pods.")
    profile_list = List(
        profiles.PROFILE_LIST, config=True, help="KubeSpawner-style profiles (see profiles.py)."
    )
    image = Unicode(profiles.IMAGE, config=True, help="The notebook image named in the Pod.")
    node_selector = Dict(config=True, help="The Pod's nodeSelector.")
    tolerations = List(config=True, help="The Pod's tolerations.")
    extra_resource_limits = Dict(config=True, help="Extra limits, e.g. nvidia.com/gpu.")
    k8s_request_timeout = Float(5.0, config=True, help="Seconds per Kubernetes API call.")
    pod_delete_timeout = Float(30.0, config=True, help="Seconds to wait for a deleted Pod to go.")
    pod_ready_timeout = Float(
        0.0,
        config=True,
        help="Seconds start() waits for the Pod to be Running (0: do not wait; needs the "
        "simulator's scheduler and kubelet).",
    )
    controls_file = Unicode(
        "", config=True, help="JSON file of the harness's controls (see harness.set_controls)."
    )

    @default("cmd")
    def _default_cmd(self) -> list[str]:
        return [sys.executable, str(STANDIN)]

    @default("apply_user_options")
    def _default_apply_user_options(self) -> Any:
        return _apply_profile

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # What the configuration set, restored before each profile is applied: a server started
        # as `gpu` and restarted as `small` must not keep the GPU limit.
        self._configured = {name: getattr(self, name) for name in profiles.OVERRIDABLE}
        self.profile_slug = ""
        self._stopping = False

    # -- names ---------------------------------------------------------------------------------

    @property
    def pod_name(self) -> str:
        return profiles.pod_name(self.user.name, self.name)

    def pod_manifest(self) -> dict[str, Any]:
        return profiles.pod_manifest(
            username=self.user.name,
            servername=self.name,
            namespace=self.namespace,
            image=self.image,
            cpu_guarantee=self.cpu_guarantee,
            cpu_limit=self.cpu_limit,
            mem_guarantee=self.mem_guarantee,
            mem_limit=self.mem_limit,
            node_selector=self.node_selector,
            tolerations=self.tolerations,
            extra_resource_limits=self.extra_resource_limits,
            # Only what identifies the server: the hub's token stays with the local process.
            env={
                "JUPYTERHUB_USER": self.user.name,
                "JUPYTERHUB_SERVER_NAME": self.name,
                "JUPYTERHUB_SERVICE_PREFIX": self.server.base_url if self.server else "",
            },
        )

    # -- profile -------------------------------------------------------------------------------

    def apply_profile(self, options: dict[str, Any]) -> None:
        """Apply ``options`` as KubeSpawner does: restore the configured values, then set every
        key of the profile's ``kubespawner_override`` (callables get the spawner)."""
        slug = options.get("profile") or ""
        if not isinstance(slug, str):
            raise web.HTTPError(400, "user_options.profile must be a string")
        try:
            profile = profiles.profile_select(slug, self.profile_list)
        except profiles.UnknownProfile as exc:
            raise web.HTTPError(400, str(exc)) from None
        request = options.get("request")
        if request is not None and not request_id_valid(request):
            raise web.HTTPError(400, "user_options.request must be a launch request id")
        for name, value in self._configured.items():
            setattr(self, name, value)
        for name, value in profile.get("kubespawner_override", {}).items():
            if name not in profiles.OVERRIDABLE:
                raise web.HTTPError(500, f"profile {profile['slug']!r} overrides {name!r}")
            setattr(self, name, value(self) if callable(value) else value)
        if request is not None:
            # Its own instance: only that launch's nodes (they carry the label and the taint).
            self.node_selector = {**self.node_selector, profiles.REQUEST_LABEL: str(request)}
            self.tolerations = [
                *self.tolerations,
                {
                    "key": profiles.REQUEST_LABEL,
                    "operator": "Equal",
                    "value": str(request),
                    "effect": "NoSchedule",
                },
            ]
        self.profile_slug = profile["slug"]

    # -- lifecycle -----------------------------------------------------------------------------

    def make_preexec_fn(self, name: str) -> Any:
        home = self.home_dir

        def preexec() -> None:
            os.makedirs(home, 0o755, exist_ok=True)
            os.chdir(home)
            _die_with_hub()

        return preexec

    def get_env(self) -> dict[str, str]:
        env = super().get_env()
        env["CLUSTERWEB_STANDIN_HUB_VERSION"] = HUB_VERSION
        return env

    async def start(self) -> Any:
        delay = self._control("spawn_delay")
        if delay:
            # Harness controls: a spawn as slow as a node coming up, and one that then fails,
            # for the pending and failure paths of the hub's clients.
            await asyncio.sleep(float(delay))
        error = self._control("spawn_error")
        if error:
            raise RuntimeError(str(error))
        ready_timeout = self._control("pod_ready_timeout")
        ready_timeout = self.pod_ready_timeout if ready_timeout is None else float(ready_timeout)
        await asyncio.to_thread(self._pod_create)
        try:
            if ready_timeout:
                # As KubeSpawner: the server is not up before its Pod runs, so a profile whose
                # node is still coming up stays pending.
                await asyncio.to_thread(self._pod_wait_running, ready_timeout)
            return await super().start()
        except BaseException:
            # The hub stops a failed spawn too, but a cancelled one may never get that far.
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self._pod_delete)
            raise

    async def stop(self, now: bool = False) -> None:
        # The base class's stop polls until the process is gone; those polls must not look at
        # the Pod (which is about to go anyway).
        self._stopping = True
        try:
            await super().stop(now=now)
            await asyncio.to_thread(self._pod_delete)
        finally:
            self._stopping = False

    async def poll(self) -> int | None:
        status = await super().poll()
        if status is not None or self._stopping:
            return status
        try:
            exists = await asyncio.to_thread(self._pod_exists)
        except Exception:  # the API being unreachable says nothing about the server
            self.log.warning("Could not read pod %s", self.pod_name, exc_info=True)
            return None
        if exists:
            return None
        # As KubeSpawner: no Pod, no server. The hub then stops it, which ends the process.
        self.log.warning("Pod %s is gone: the server is dead", self.pod_name)
        await self._signal(signal.SIGTERM)
        return 1

    def get_state(self) -> dict[str, Any]:
        state = super().get_state()
        if self.profile_slug:
            state["profile"] = self.profile_slug
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        self.profile_slug = state.get("profile", "")

    # -- the Kubernetes side (blocking; run in a thread) -----------------------------------------

    def _control(self, name: str) -> Any:
        if not self.controls_file:
            return None
        try:
            return json.loads(Path(self.controls_file).read_text() or "{}").get(name)
        except (OSError, ValueError):
            return None

    def _pod_create(self) -> None:
        core = _core(self.kubeconfig)
        timeout = self.k8s_request_timeout
        try:
            # A real cluster has the namespace already; the simulator loses it on each reset.
            core.create_namespace({"metadata": {"name": self.namespace}}, _request_timeout=timeout)
        except ApiException as exc:
            if exc.status != 409:
                raise
        manifest = self.pod_manifest()
        try:
            core.create_namespaced_pod(self.namespace, manifest, _request_timeout=timeout)
        except ApiException as exc:
            if exc.status != 409:
                raise
            # A leftover from a hub that died without stopping it (KubeSpawner does the same).
            self.log.warning("Pod %s exists already; replacing it", self.pod_name)
            self._pod_delete(grace=0)
            core.create_namespaced_pod(self.namespace, manifest, _request_timeout=timeout)
        self.log.info("Created pod %s/%s (%s)", self.namespace, self.pod_name, self.profile_slug)

    def _pod_exists(self) -> bool:
        try:
            _core(self.kubeconfig).read_namespaced_pod(
                self.pod_name, self.namespace, _request_timeout=self.k8s_request_timeout
            )
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def _pod_wait_running(self, timeout: float) -> None:
        """Return once the Pod is Running; raise if it ends, goes away or the deadline passes."""
        deadline = time.monotonic() + timeout
        core = _core(self.kubeconfig)
        phase = "Pending"
        while time.monotonic() < deadline:
            try:
                pod = core.read_namespaced_pod(
                    self.pod_name, self.namespace, _request_timeout=self.k8s_request_timeout
                )
            except ApiException as exc:
                if exc.status == 404:
                    raise RuntimeError(
                        f"pod {self.namespace}/{self.pod_name} was deleted"
                    ) from None
                raise
            phase = (pod.status.phase if pod.status else None) or "Pending"
            if phase == "Running":
                return
            if phase in ("Succeeded", "Failed"):
                raise RuntimeError(f"pod {self.namespace}/{self.pod_name} is {phase}")
            time.sleep(0.1)
        raise TimeoutError(
            f"pod {self.namespace}/{self.pod_name} still {phase} after {timeout:g} s"
        )

    def _pod_delete(self, grace: int = 1) -> None:
        """Delete the Pod and wait until it is gone (absent already is fine)."""
        core = _core(self.kubeconfig)
        timeout = self.k8s_request_timeout
        try:
            core.delete_namespaced_pod(
                self.pod_name, self.namespace, grace_period_seconds=grace, _request_timeout=timeout
            )
        except ApiException as exc:
            if exc.status == 404:
                return
            raise
        deadline = time.monotonic() + self.pod_delete_timeout
        while time.monotonic() < deadline:
            if not self._pod_exists():
                self.log.info("Deleted pod %s/%s", self.namespace, self.pod_name)
                return
            time.sleep(0.05)
        self.log.warning("Pod %s/%s still terminating", self.namespace, self.pod_name)


def _apply_profile(spawner: SimulatedKubeSpawner, user_options: dict[str, Any]) -> None:
    spawner.apply_profile(user_options or {})
