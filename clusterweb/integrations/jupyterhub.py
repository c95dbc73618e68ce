"""The JupyterHub adapter: the one place Clusterweb talks to the hub's REST API.

It speaks Clusterweb's words (a user's server, its profile, start, stop, status, last activity)
instead of the API's, with an explicit timeout on every request. Failures come out as
``clusterweb.errors`` exceptions: :class:`~clusterweb.errors.TransientError` when trying again may
work (unreachable, timeout, 429, 5xx, a spawn that failed or is still pending at the deadline),
otherwise :class:`~clusterweb.errors.PermanentError` (a refused token, an unknown profile or another
400, a missing user or server where that matters).

The hub runs the configuration Clusterweb ships (``deploy/jupyterhub/``: KubeSpawner with
``profile_list``). A start sends ``user_options`` ``{"profile": ..., "request": ...}``: the profile
as KubeSpawner reads it, and the launch request whose nodes the server is pinned to; the shipped
hooks refuse an unknown profile (400) and a launch that is not the user's (403) before anything
starts, with the messages :data:`UNKNOWN_PROFILE` and :data:`LAUNCH_REFUSED` begin with.

Configuration is read lazily: :func:`client_from_settings` reads ``settings.JUPYTERHUB_URL``,
``JUPYTERHUB_API_TOKEN`` and ``JUPYTERHUB_TIMEOUT`` when first called; :class:`JupyterHub` takes
them explicitly. Importing this module needs neither Django settings nor a hub. Works with
JupyterHub 3 and later (``include_stopped_servers`` and the pagination envelope, not 6.0's
single-server GET).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from clusterweb.errors import IntegrationError, PermanentError, TransientError

NO_REASON = "the hub gave no reason"
SYSTEM = "jupyterhub"
DEFAULT_TIMEOUT = 10.0  # seconds; one request, not a whole spawn
# A spawn waits for a node when the profile needs its own instance: minutes, as KubeSpawner's
# default start_timeout (300 s) allows.
DEFAULT_SPAWN_TIMEOUT = 300.0
DEFAULT_STOP_TIMEOUT = 60.0
TOKEN_SETTING = "JUPYTERHUB_API_TOKEN"  # noqa: S105 - the setting's name

STOPPED, PENDING, READY, STOPPING = "stopped", "pending", "ready", "stopping"
# How the shipped configuration's hooks begin their refusals (deploy/jupyterhub/; a test keeps
# them equal): the hub answers the start request with them.
UNKNOWN_PROFILE = "Unknown profile "
LAUNCH_REFUSED = "Launch request "
_PAGE_SIZE = 200  # the hub's default maximum page
_PAGINATION = "application/jupyterhub-pagination+json"


@dataclass(frozen=True)
class ServerStatus:
    """One of a user's servers as the hub sees it.

    ``state`` is ``stopped`` (also: never created, or the user does not exist), ``pending``
    (starting), ``ready`` or ``stopping``. ``url`` is where the user opens it (the hub's public
    address plus the server's path), "" when stopped. ``profile`` is the ``user_options.profile``
    it was last started with ("" if none), ``request`` the launch request it was pinned to ("" if
    none). Times are timezone-aware UTC or None.
    """

    user: str
    name: str
    state: str
    profile: str = ""
    request: str = ""
    url: str = ""
    started: datetime | None = None
    last_activity: datetime | None = None

    @property
    def active(self) -> bool:
        """Whether the server holds resources (anything but stopped)."""
        return self.state != STOPPED


@dataclass(frozen=True)
class UserActivity:
    """A hub user's last activity and their servers (stopped ones included)."""

    user: str
    last_activity: datetime | None
    servers: Mapping[str, ServerStatus] = field(default_factory=dict)


# -- error translation ---------------------------------------------------------------------------


def _message(response: requests.Response) -> str:
    """The hub's own words (``{"status": N, "message": ...}``), else the reason phrase."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return response.reason or f"HTTP {response.status_code}"


def translate_response(response: requests.Response, what: str) -> IntegrationError:
    """Sort a refusal: 429 and 5xx are transient; 401/403 (the token), 400, 404 and every other
    4xx are permanent."""
    status = response.status_code
    text = f"{what}: {status} {_message(response)}"
    if status in (401, 403):
        return PermanentError(
            f"{text}. Check {TOKEN_SETTING}: the hub refused the token or its role lacks the "
            "scopes Clusterweb needs (admin:users, servers).",
            system=SYSTEM,
            code="forbidden" if status == 403 else "unauthorized",
        )
    if status == 429 or status >= 500:
        return TransientError(text, system=SYSTEM, code=f"http_{status}")
    codes = {400: "bad_request", 404: "not_found", 409: "conflict"}
    return PermanentError(text, system=SYSTEM, code=codes.get(status, f"http_{status}"))


def translate_exception(exc: requests.RequestException, what: str) -> IntegrationError:
    """Timeouts and connection failures are transient; a malformed URL is permanent."""
    if isinstance(exc, requests.Timeout):
        return TransientError(f"{what}: timed out ({exc})", system=SYSTEM, code="timeout")
    if isinstance(exc, requests.ConnectionError):
        return TransientError(f"{what}: unreachable ({exc})", system=SYSTEM, code="unreachable")
    if isinstance(exc, requests.exceptions.InvalidURL | requests.exceptions.MissingSchema):
        return PermanentError(f"{what}: check JUPYTERHUB_URL: {exc}", system=SYSTEM, code="config")
    return TransientError(f"{what}: {exc}", system=SYSTEM, code="transport")


def _hook_refusal(status: int, message: str, what: str) -> IntegrationError | None:
    """The shipped hooks' refusals, with their own codes; None for anything else."""
    if status == 403 and message.startswith(LAUNCH_REFUSED):
        return PermanentError(f"{what}: {message}", system=SYSTEM, code="launch_not_owned")
    if status == 400 and message.startswith(UNKNOWN_PROFILE):
        return PermanentError(f"{what}: {message}", system=SYSTEM, code="unknown_profile")
    if status == 400 and message.startswith(LAUNCH_REFUSED):
        return PermanentError(f"{what}: {message}", system=SYSTEM, code="launch_profile_mismatch")
    return None


def _start_refused(response: requests.Response, what: str) -> IntegrationError:
    """A start the hub refused: the shipped hooks' refusals get their own codes; a 403 without
    theirs is the token's (translate_response)."""
    refused = _hook_refusal(response.status_code, _message(response), what)
    return refused or translate_response(response, what)


# A spawn that failed on an HTTPError (the user_options hook's): the hub's progress stream says
# "Spawn failed: " and str() of tornado's HTTPError, "HTTP 403: <reason> (<message>)".
_SPAWN_HTTP_ERROR = re.compile(r"^Spawn failed: HTTP (\d{3}): [^(]*\((.*)\)\s*$", re.DOTALL)


def _spawn_refused(reason: str, what: str) -> IntegrationError | None:
    """A failed spawn that was the hooks' refusal (or their 503) rather than a failed pod: a hub
    that answers starts at once (z2jh's ``slow_spawn_timeout: 0``) reports a refusal this way
    instead of as the start request's answer. None for any other failure."""
    match = _SPAWN_HTTP_ERROR.match(reason)
    if match is None:
        return None
    status, message = int(match.group(1)), match.group(2)
    refused = _hook_refusal(status, message, what)
    if refused is not None:
        return refused
    if status >= 500:
        return TransientError(f"{what}: {message}", system=SYSTEM, code=f"http_{status}")
    if status == 400:  # the hub's "Invalid user options": the hook refused what was sent
        return PermanentError(f"{what}: {message}", system=SYSTEM, code="bad_request")
    return None


# -- the client ----------------------------------------------------------------------------------


class JupyterHub:
    """Clusterweb's operations on one hub, as the service owning ``token``.

    ``url`` is the hub's address (its public proxy, e.g. ``http://proxy-public``, or the hub
    itself, ``http://hub:8081``); ``/hub/api`` is appended unless present. ``timeout`` bounds each
    request (connect and read). The settings-built instance is shared by a process's threads, as
    the Kubernetes adapter's is: a call keeps no state on the session beyond its connection pool.
    """

    def __init__(self, url: str, token: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        base = url.rstrip("/")
        if base.endswith("/hub/api"):
            base = base[: -len("/hub/api")]
        self.base_url = base
        self.api_url = f"{base}/hub/api"
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers.update(
            {"Authorization": f"token {token}", "Accept": "application/json"}
        )
        # Retry only failures to connect (the request never reached the hub); anything else is
        # the caller's decision, made from our Transient/Permanent sorting. read=False re-raises
        # a read timeout as itself (with read=0 requests would report a ConnectionError).
        retry = Retry(total=2, connect=2, read=False, status=0, redirect=0, backoff_factor=0.1)
        adapter = HTTPAdapter(max_retries=retry)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def close(self) -> None:
        """Release the connection pool."""
        self.session.close()

    def _request(
        self,
        method: str,
        path: str,
        what: str,
        *,
        body: Any = None,
        ok: tuple[int, ...] = (200,),
        also: tuple[int, ...] = (),
        headers: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """One request. Statuses in ``ok`` and ``also`` are returned; others raise translated."""
        try:
            response = self.session.request(
                method,
                self.api_url + path,
                data=None if body is None else json.dumps(body),
                headers={"Content-Type": "application/json", **(headers or {})},
                timeout=self.timeout,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise translate_exception(exc, what) from exc
        if response.status_code in ok or response.status_code in also:
            return response
        raise translate_response(response, what)

    # -- users ---------------------------------------------------------------------------------

    def user_ensure(self, user: str) -> bool:
        """Make sure the hub has ``user``. Returns True if it was created now."""
        response = self._request(
            "POST", f"/users/{_q(user)}", f"create hub user {user}", ok=(201,), also=(409,)
        )
        return response.status_code == 201

    def users_activity(self) -> dict[str, UserActivity]:
        """Every hub user's last activity and servers, by user name (all pages)."""
        users: dict[str, UserActivity] = {}
        offset = 0
        while True:
            response = self._request(
                "GET",
                f"/users?include_stopped_servers=1&offset={offset}&limit={_PAGE_SIZE}",
                "list hub users",
                headers={"Accept": _PAGINATION},
            )
            page = response.json()
            items = page["items"] if isinstance(page, dict) else page
            for model in items:
                activity = self._user_activity(model)
                users[activity.user] = activity
            following = page.get("_pagination", {}).get("next") if isinstance(page, dict) else None
            if not following or not items:
                return users
            offset = int(following["offset"])

    def _user_activity(self, model: Mapping[str, Any]) -> UserActivity:
        name = model["name"]
        servers = {
            server: self._status(name, server, server_model)
            for server, server_model in (model.get("servers") or {}).items()
        }
        return UserActivity(name, _time(model.get("last_activity")), servers)

    # -- servers -------------------------------------------------------------------------------

    def server_status(self, user: str, *, name: str = "") -> ServerStatus:
        """The state of ``user``'s default server (``name=""``) or named server ``name``.

        A user or server the hub does not know is ``stopped``: nothing runs for it.
        """
        model = self._server_model(user, name)
        if model is None:
            return ServerStatus(user, name, STOPPED)
        return self._status(user, name, model)

    def _server_model(self, user: str, name: str) -> dict[str, Any] | None:
        response = self._request(
            "GET",
            f"/users/{_q(user)}?include_stopped_servers=1",
            f"read hub user {user}",
            also=(404,),
        )
        if response.status_code == 404:
            return None
        return (response.json().get("servers") or {}).get(name)

    def _status(self, user: str, name: str, model: Mapping[str, Any]) -> ServerStatus:
        pending = model.get("pending")
        if pending == "spawn":
            state = PENDING
        elif pending == "stop":
            state = STOPPING
        elif model.get("ready"):
            state = READY
        elif model.get("stopped", True):
            state = STOPPED
        else:
            state = PENDING  # has a server record but is not ready yet (e.g. being checked)
        url = ""
        if state != STOPPED:
            url = model.get("full_url") or ""
            if not url and model.get("url"):
                url = self.base_url + model["url"]
        options = model.get("user_options") or {}
        profile = options.get("profile") if isinstance(options, dict) else ""
        request = options.get("request") if isinstance(options, dict) else None
        return ServerStatus(
            user=user,
            name=name,
            state=state,
            profile=profile if isinstance(profile, str) else "",
            request="" if request is None or isinstance(request, bool) else str(request),
            url=url,
            started=_time(model.get("started")),
            last_activity=_time(model.get("last_activity")),
        )

    def server_start(
        self,
        user: str,
        *,
        name: str = "",
        profile: str = "small",
        request_id: str | int | None = None,
        wait: bool = True,
        wait_timeout: float = DEFAULT_SPAWN_TIMEOUT,
    ) -> ServerStatus:
        """Start ``user``'s default or named server with ``profile``; create the hub user if
        missing. Safe to call twice: a server already starting or running with the same profile
        and launch request is success.

        ``request_id`` (a launch request's id) pins the server to that launch's nodes. With
        ``wait``, returns once the server is ready, or raises TransientError (code ``timeout``)
        after ``wait_timeout`` seconds, the server still pending; without, returns the state right
        after the hub accepted the start (``pending`` or ``ready``).

        Raises PermanentError for an unknown profile (code ``unknown_profile``), a launch request
        that is not ``user``'s (code ``launch_not_owned``; the hub checks its nodes' owner label),
        another refusal (400, code ``bad_request``) or a server that runs with another profile
        (code ``profile_mismatch``: stop it first) or for another launch request (code
        ``launch_mismatch``: stop it first), a launch with no node the profile can use (code
        ``launch_profile_mismatch``, e.g. ``large`` on a gpu launch); TransientError (code
        ``spawn_failed``, with the hub's reason) if the hub gave up on the spawn, e.g. its pod
        never became ready, and (code ``http_503``) if the hub could not check the launch (its
        Kubernetes API failed).
        A hub that answers every start at once (z2jh: ``slow_spawn_timeout: 0``) reports the
        hooks' refusals as a failed spawn; with ``wait`` they come out with the same classes and
        codes as when the start request itself is refused.
        """
        what = f"start {_label(user, name)} with profile {profile!r}"
        options: dict[str, Any] = {"profile": profile}
        if request_id is not None:
            options["request"] = str(request_id)
        path = _server_path(user, name)
        body = {"user_options": options}
        refusals = (400, 403, 404)
        response = self._request("POST", path, what, body=body, ok=(201, 202), also=refusals)
        if response.status_code == 404:
            self.user_ensure(user)
            response = self._request("POST", path, what, body=body, ok=(201, 202), also=(400, 403))
        if response.status_code == 403:
            raise _start_refused(response, what)
        status = self.server_status(user, name=name)
        if response.status_code == 400:
            # The hub refuses a start that is running, stopping or invalid; only the server's
            # state tells which, whatever the message's wording.
            if status.state == STOPPING:
                raise TransientError(
                    f"{what}: the server is still stopping", system=SYSTEM, code="stopping"
                )
            if status.state == STOPPED:
                raise _start_refused(response, what)
        if status.active and status.profile != profile:
            raise PermanentError(
                f"{what}: it already runs with profile {status.profile!r}; stop it first",
                system=SYSTEM,
                code="profile_mismatch",
            )
        if status.active and status.request != options.get("request", ""):
            pinned = f"launch request {status.request!r}" if status.request else "no launch"
            raise PermanentError(
                f"{what}: it already runs for {pinned}; stop it first",
                system=SYSTEM,
                code="launch_mismatch",
            )
        if not wait or status.state == READY:
            return status
        return self._wait_for(user, name, READY, wait_timeout, what)

    def server_stop(
        self,
        user: str,
        *,
        name: str = "",
        remove: bool = False,
        wait: bool = True,
        wait_timeout: float = DEFAULT_STOP_TIMEOUT,
    ) -> None:
        """Stop ``user``'s server; with ``remove``, also forget a named one. Idempotent: a
        server (or user) that is not there, or not running, is success. A pending start is
        cancelled.

        With ``wait``, returns once it is stopped (and removed), or raises TransientError (code
        ``timeout``) after ``wait_timeout`` seconds. ``remove`` on the default server is a
        PermanentError (the hub cannot delete a user's default server).
        """
        what = f"stop {_label(user, name)}"
        response = self._request(
            "DELETE",
            _server_path(user, name),
            what,
            body={"remove": True} if remove else None,
            ok=(202, 204),
            also=(404,),
        )
        if response.status_code == 202 and wait:
            self._wait_for(user, name, None if remove else STOPPED, wait_timeout, what)

    def _wait_for(
        self, user: str, name: str, target: str | None, timeout: float, what: str
    ) -> ServerStatus:
        """Poll until the server is in ``target`` (``None``: gone from the hub) or the deadline.

        Polls quickly at first (a stand-in or a warm node is up in under a second), then every
        two seconds at most, so a five-minute wait makes about 150 requests.
        """
        deadline = time.monotonic() + timeout
        interval = 0.05
        while True:
            model = self._server_model(user, name)
            status = (
                ServerStatus(user, name, STOPPED)
                if model is None
                else self._status(user, name, model)
            )
            if target is None and model is None:
                return status
            if status.state == target:
                return status
            if target == READY and status.state in (STOPPED, STOPPING):
                reason = self._spawn_failure(user, name)
                raise _spawn_refused(reason, what) or TransientError(
                    f"{what}: the spawn failed: {reason}",
                    system=SYSTEM,
                    code="spawn_failed",
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TransientError(
                    f"{what}: still {status.state} after {timeout:g} s",
                    system=SYSTEM,
                    code="timeout",
                )
            time.sleep(min(interval, remaining))
            interval = min(interval * 2, 2.0)

    def _spawn_failure(self, user: str, name: str) -> str:
        """The hub's reason for a failed spawn, from its progress stream; best effort. The
        server shows stopped a moment before its spawn's outcome is recorded (JupyterHub's
        ``User.spawn`` stops the server, then raises): until then the stream answers 400 "not
        starting", so a missing reason is asked for again for up to about two seconds."""
        for pause in (0.1, 0.2, 0.4, 0.6, 0.8, 0.0):
            reason = self._spawn_failure_read(user, name)
            if reason != NO_REASON or not pause:
                return reason
            time.sleep(pause)
        return NO_REASON

    def _spawn_failure_read(self, user: str, name: str) -> str:
        path = _server_path(user, name) + "/progress"
        try:
            with self.session.get(
                self.api_url + path,
                headers={"Accept": "text/event-stream"},
                timeout=self.timeout,
                stream=True,
            ) as response:
                if response.status_code != 200:
                    return NO_REASON
                for line in response.iter_lines(decode_unicode=True):
                    if line and line.startswith("data:"):
                        event = json.loads(line[5:])
                        if event.get("failed"):
                            return _failure_reason(str(event.get("message") or ""))
                        if event.get("ready"):
                            return "it is ready after all"
        except (requests.RequestException, ValueError):
            pass
        return NO_REASON


# -- helpers -------------------------------------------------------------------------------------


def _failure_reason(message: str) -> str:
    """The hub's failed-spawn message, which is "Spawn failed: " and the exception's text: a
    spawn that outlives the hub's start timeout ends in a TimeoutError without any."""
    if not message.strip() or message.rstrip().endswith(":"):
        return f"{message.strip() or 'Spawn failed:'} no reason given (the hub's start timeout?)"
    return message


def _q(part: str) -> str:
    return quote(part, safe="")


def _server_path(user: str, name: str) -> str:
    return f"/users/{_q(user)}/servers/{_q(name)}" if name else f"/users/{_q(user)}/server"


def _label(user: str, name: str) -> str:
    return f"{user}'s server {name!r}" if name else f"{user}'s default server"


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


# -- construction --------------------------------------------------------------------------------

_default: JupyterHub | None = None
_default_lock = threading.Lock()


def client_from_settings() -> JupyterHub:
    """The process-wide client configured by Django settings, built on first use.

    ``JUPYTERHUB_URL`` and ``JUPYTERHUB_API_TOKEN`` (both required: PermanentError naming the
    missing one) and ``JUPYTERHUB_TIMEOUT`` (seconds per request, default 10).
    """
    global _default
    with _default_lock:
        if _default is None:
            from django.conf import settings

            url = str(getattr(settings, "JUPYTERHUB_URL", "") or "")
            token = str(getattr(settings, "JUPYTERHUB_API_TOKEN", "") or "")
            timeout = float(getattr(settings, "JUPYTERHUB_TIMEOUT", DEFAULT_TIMEOUT))
            missing = [n for n, v in (("JUPYTERHUB_URL", url), (TOKEN_SETTING, token)) if not v]
            if missing:
                raise PermanentError(
                    f"JupyterHub is not configured: set {' and '.join(missing)}",
                    system=SYSTEM,
                    code="config",
                )
            _default = JupyterHub(url, token, timeout=timeout)
        return _default


def reset_client() -> None:
    """Forget the settings-built client (tests that change settings call this)."""
    global _default
    with _default_lock:
        if _default is not None:
            _default.close()
        _default = None
