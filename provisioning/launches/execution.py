"""Carrying out launch requests: an approved request becomes instances, nodes and running workers,
and a stop takes all of it away again (docs/launches.md, "Execution").

The work is a chain of **short steps**, each one task run
(``provisioning.launches.tasks.launch_advance``):

- launching: *room* (claim the pool's capacity under a row lock on the pool), *credentials* (a
  bootstrap token for this launch, expiring after the join timeout), *capacity* (RunInstances from
  the pool's launch template, after looking the request's instances up by tag), *join* (poll until
  the instances run and their nodes are Ready), *workload* (the Spark worker Deployment),
  *register* (poll the master until the workers are registered) → ``running``;
- stopping: *stop_workload*, *terminate* (every instance found by the request's tag),
  *terminated* (poll until EC2 says terminated), *stop_credentials* (delete the token),
  *cost* (the final cost from the cost rows) → ``stopped`` (or ``failed``).

Every step is safe to run twice and to be interrupted anywhere: a worker runs a step only while
holding the execution's lease (one conditional UPDATE), what a step did outside is found again
from the outside (instances by their ``clusterweb:request`` tag, deterministic Kubernetes names,
an EC2 ClientToken derived from request, step and generation), and the step is recorded only
after it happened. A step that waits re-schedules itself (``LAUNCH_POLL_SECONDS``) instead of
holding one of the worker's slots; transient errors back off (capped at a minute, far below
Redis's visibility timeout); permanent ones fail the request and clean up what exists. The
database is the truth, the queue a hint: the sweeper enqueues again whatever is overdue.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q, Sum

from clusterweb import clock
from clusterweb.errors import IntegrationError, PermanentError, TransientError
from clusterweb.failpoints import failpoint
from clusterweb.integrations import aws, k8s
from provisioning import inventory
from provisioning.launches import spark
from provisioning.launches.execution_models import LaunchExecution
from provisioning.models import Node, NodeState, Pool
from provisioning.node_join import JoinSpec, join_script

logger = logging.getLogger(__name__)

# Phases, in order.
ROOM, CREDENTIALS, CAPACITY, JOIN, WORKLOAD, REGISTER = (
    "room",
    "credentials",
    "capacity",
    "join",
    "workload",
    "register",
)
STOP_WORKLOAD, TERMINATE, TERMINATED, STOP_CREDENTIALS, COST = (
    "stop_workload",
    "terminate",
    "terminated",
    "stop_credentials",
    "cost",
)
LAUNCH_PHASES = (ROOM, CREDENTIALS, CAPACITY, JOIN, WORKLOAD, REGISTER)
STOP_PHASES = (STOP_WORKLOAD, TERMINATE, TERMINATED, STOP_CREDENTIALS, COST)
PHASES = LAUNCH_PHASES + STOP_PHASES
# The step log's names (what the request page lists).
STEP_NAMES = {
    ROOM: "Room",
    CREDENTIALS: "Join credentials",
    CAPACITY: "Capacity",
    JOIN: "Join",
    WORKLOAD: "Workload",
    REGISTER: "Workers registered",
    STOP_WORKLOAD: "Stop: workload",
    TERMINATE: "Stop: instances",
    TERMINATED: "Stop: instances terminated",
    STOP_CREDENTIALS: "Stop: join credentials",
    COST: "Final cost",
}
# Steps that wait for the outside world: a transient error there is one more look, until the
# step's deadline.
WAITING = (JOIN, REGISTER, TERMINATED)

# The lease (LAUNCH_LEASE_SECONDS) outlasts any one step: a step is a few API calls, each bounded
# by the adapters' timeouts and attempts (AWS_READ_TIMEOUT x AWS_MAX_ATTEMPTS,
# KUBE_REQUEST_TIMEOUT). A worker that dies holding it delays the request by that much at most.
# Transient failures in a row before a launch gives up (a stop never gives up: it must finish).
TRANSIENT_MAX = 8
BACKOFF_FIRST_SECONDS = 5
BACKOFF_CAP_SECONDS = 60  # far below Redis's visibility timeout (an hour)


def backoff(failures: int) -> float:
    """Seconds before the next try after ``failures`` transient failures in a row: 5, 10, 20,
    40, then 60 at most."""
    return float(min(BACKOFF_FIRST_SECONDS * 2 ** max(failures - 1, 0), BACKOFF_CAP_SECONDS))


# --- The request model (issue 17) ----------------------------------------------------------------
def _models():
    from provisioning.launches import models

    return models


def _services():
    from provisioning.launches import services

    return services


def _selectors():
    from provisioning.launches import selectors

    return selectors


# --- Entry points --------------------------------------------------------------------------------
def launch_advance(*, request_id: int) -> float | None:
    """Run the request's next step if no other worker is running one. Returns the seconds until
    the next step is due (0: at once), or None when nothing more is to be done (a final state,
    a request waiting for a human, or another worker holding the lease)."""
    models = _models()
    if not models.LaunchRequest.objects.filter(pk=request_id, state__in=ACTIVE_STATES()).exists():
        return None
    try:
        execution, _ = LaunchExecution.objects.get_or_create(request_id=request_id)
    except IntegrityError:  # a second delivery created it at the same moment
        execution = LaunchExecution.objects.get(request_id=request_id)
    now = clock.now()
    token = secrets.token_hex(8)
    lease = timedelta(seconds=settings.LAUNCH_LEASE_SECONDS)
    claimed = (
        LaunchExecution.objects.filter(pk=execution.pk)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .update(lease_until=now + lease, lease_token=token)
    )
    if not claimed:
        return None
    delay: float | None = None
    try:
        delay = _advance(request_id)
    finally:
        due = None if delay is None else clock.now() + timedelta(seconds=delay)
        LaunchExecution.objects.filter(pk=execution.pk, lease_token=token).update(
            lease_until=None, lease_token="", due_at=due
        )
    return delay


def ACTIVE_STATES() -> tuple[str, ...]:
    state = _models().LaunchState
    return (state.APPROVED, state.LAUNCHING, state.STOPPING)


def launches_sweep(*, now: datetime | None = None) -> list[int]:
    """The ids of requests that should be moving and that no task carries: approved, launching
    or stopping, with no live lease and a next look overdue by a lease's length (or never
    looked at). The caller enqueues them; a duplicate delivery is harmless (the lease)."""
    now = now or clock.now()
    overdue = now - timedelta(seconds=settings.LAUNCH_LEASE_SECONDS)
    models = _models()
    return list(
        models.LaunchRequest.objects.filter(state__in=ACTIVE_STATES())
        .filter(
            Q(execution__isnull=True)
            | (
                (Q(execution__lease_until__isnull=True) | Q(execution__lease_until__lt=now))
                & (Q(execution__due_at__isnull=True) | Q(execution__due_at__lt=overdue))
            )
        )
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def launches_time_limit(*, now: datetime | None = None) -> list[int]:
    """Running launches past their time limit (``expires_at``) begin stopping with
    ``stop_reason`` ``time_limit`` (CONVENTIONS: they end ``stopped``, not ``expired``); launches
    still launching past start + join timeout + hours fail. Returns their ids; the caller
    enqueues their stop steps."""
    now = now or clock.now()
    models = _models()
    ids = []
    for pk in models.LaunchRequest.objects.filter(
        state=models.LaunchState.RUNNING, expires_at__lte=now
    ).values_list("pk", flat=True):
        if _services().transition(
            pk,
            [models.LaunchState.RUNNING],
            models.LaunchState.STOPPING,
            source="task",
            detail={"stop_reason": "time_limit"},
            now=now,
            stop_reason=models.StopReason.TIME_LIMIT,
        ):
            ids.append(pk)
    # A launch still `launching` past start + join timeout + its hours (its instances' own
    # expires-at tag) is stuck (a step failing in a way the engine does not sort): it fails,
    # and the stop steps remove what it launched, rather than run on untended.
    for launch in models.LaunchRequest.objects.filter(
        state=models.LaunchState.LAUNCHING, execution__started_at__isnull=False
    ).select_related("execution"):
        if expires_at(launch.execution.started_at, int(launch.granted_hours)) > now:
            continue
        if launch_fail(
            request_id=launch.pk,
            error="the launch did not reach running within its time limit (stuck at its "
            f"{STEP_NAMES.get(launch.execution.phase, 'first')} step)",
        ):
            ids.append(launch.pk)
    return ids


def launches_cost_cap(*, now: datetime | None = None) -> list[int]:
    """Running launches whose cost so far (the cost rows, as their page shows it) reached their
    granted maximum (issue 17: "the approved maximum is what the request may cost") begin
    stopping with ``stop_reason`` ``cap``. Returns their ids; the caller enqueues their stop
    steps."""
    from billing.models import CostRow

    now = now or clock.now()
    models = _models()
    running = {
        str(pk): limit
        for pk, approved, quoted in models.LaunchRequest.objects.filter(
            state=models.LaunchState.RUNNING
        ).values_list("pk", "approved_max_cost", "max_cost")
        if (limit := approved if approved is not None else quoted) is not None
    }
    if not running:
        return []
    spent = (
        CostRow.objects.filter(request__in=list(running))
        .values("request")
        .annotate(total=Sum("cost"))
        .values_list("request", "total")
    )
    ids = []
    for request, total in spent:
        limit = running[request]
        if total is None or Decimal(total) < limit:
            continue
        if _services().transition(
            int(request),
            [models.LaunchState.RUNNING],
            models.LaunchState.STOPPING,
            source="task",
            detail={"stop_reason": "cap", "cost": str(Decimal(total).quantize(Decimal("0.01")))},
            now=now,
            stop_reason=models.StopReason.CAP,
        ):
            ids.append(int(request))
    return ids


def launches_unnotified(*, now: datetime | None = None) -> list[int]:
    """Launches that ended (stopped or failed) in the last day whose requester was not told yet
    (the email's task was lost with the broker): the sweeper enqueues the email again."""
    now = now or clock.now()
    models = _models()
    ended = (models.LaunchState.STOPPED, models.LaunchState.FAILED)
    return list(
        models.LaunchRequest.objects.filter(state__in=ended, ended_at__gte=now - timedelta(days=1))
        .exclude(notified_state=F("state"))
        .order_by("pk")
        .values_list("pk", flat=True)
    )


# --- The engine ----------------------------------------------------------------------------------
def _advance(request_id: int) -> float | None:
    models = _models()
    request = models.LaunchRequest.objects.select_related("pool").get(pk=request_id)
    execution = LaunchExecution.objects.get(request_id=request_id)
    state = models.LaunchState
    if request.state == state.APPROVED:
        phase = ROOM
    elif request.state == state.LAUNCHING:
        phase = execution.phase if execution.phase in LAUNCH_PHASES else CREDENTIALS
    elif request.state == state.STOPPING:
        # A stop that arrived while a launch step ran: the launch phase it left behind is stale.
        phase = execution.phase if execution.phase in STOP_PHASES else STOP_WORKLOAD
    else:
        return None
    run = Run(request=request, execution=execution, phase=phase)
    try:
        delay = STEPS[phase](run)
    except TransientError as exc:
        return _transient(run, exc)
    except PermanentError as exc:
        return _permanent(run, exc)
    if execution.failures:
        LaunchExecution.objects.filter(pk=execution.pk).update(failures=0)
    return delay


def _transient(run: Run, exc: TransientError) -> float:
    ex = run.execution
    failures = ex.failures + 1
    LaunchExecution.objects.filter(pk=ex.pk).update(failures=failures)
    message = f"{exc} (trying again)"
    _step_note(run, message)
    logger.warning("launch %s %s: transient: %s", run.request.pk, run.phase, exc)
    stopping = run.phase in STOP_PHASES
    if run.phase in WAITING and not _past(ex.deadline):
        return settings.LAUNCH_POLL_SECONDS
    if not stopping and failures > TRANSIENT_MAX:
        return _permanent(run, PermanentError(f"{exc} ({failures} tries)", code=exc.code))
    return backoff(failures)


def _permanent(run: Run, exc: IntegrationError) -> float | None:
    """A launch step that cannot succeed: fail the request and remove what it started. A stop
    step: record it and try again later (a stop must finish; an admin sees the error)."""
    logger.error("launch %s %s: %s", run.request.pk, run.phase, exc)
    if run.phase in STOP_PHASES:
        failures = run.execution.failures + 1
        LaunchExecution.objects.filter(pk=run.execution.pk).update(failures=failures)
        _step_note(run, f"{exc} (trying again)")
        return backoff(failures)
    _step_end(run, "failed", str(exc))
    launch_fail(request_id=run.request.pk, error=plain_error(exc))
    return 0


def plain_error(exc: Exception) -> str:
    """What went wrong, in words the requester understands (kept short for the page and mail)."""
    code = getattr(exc, "code", "")
    if code in aws.SPOT_FALLBACK_CODES:
        return f"AWS had no capacity for this launch ({code}): {exc}"
    return str(exc)[:500]


@dataclass
class Run:
    request: Any
    execution: LaunchExecution
    phase: str

    @property
    def count(self) -> int:
        return int(self.request.granted_count)

    @property
    def hours(self) -> int:
        return int(self.request.granted_hours)

    def goto(self, phase: str, **fields: Any) -> bool:
        """Record that the next step is ``phase`` (with ``fields`` of the execution), only while
        the request is still in the state this step ran for: a stop that came meanwhile wins."""
        with transaction.atomic():
            still = (
                _models()
                .LaunchRequest.objects.select_for_update()
                .filter(pk=self.request.pk, state=self.request.state)
                .exists()
            )
            if still:
                LaunchExecution.objects.filter(pk=self.execution.pk).update(phase=phase, **fields)
        return still


def _past(deadline: datetime | None) -> bool:
    return deadline is not None and clock.now() >= deadline


def _join_timeout() -> timedelta:
    return timedelta(seconds=settings.LAUNCH_JOIN_TIMEOUT_SECONDS)


def _kube() -> k8s.Kubernetes:
    return k8s.client_from_settings()


# --- Step log ------------------------------------------------------------------------------------
def _step_begin(run: Run, detail: str = "") -> None:
    """Open the phase's line of the step log (a rerun reuses the open line)."""
    _services().step_start(run.request.pk, STEP_NAMES[run.phase], detail=detail)


def _step_note(run: Run, detail: str) -> None:
    _services().step_start(run.request.pk, STEP_NAMES[run.phase], detail=detail)


def _step_end(run: Run, state: str, detail: str = "") -> None:
    services = _services()
    step = services.step_start(run.request.pk, STEP_NAMES[run.phase])
    services.step_finish(step.pk, ok=state == "done", detail=detail)


# --- Launch steps --------------------------------------------------------------------------------
def _room(run: Run) -> float:
    models = _models()
    request = run.request
    failpoint("launch.before_room")
    with transaction.atomic():
        # The pool's row lock serialises every room claim of the pool: two approved requests
        # cannot both see the same free nodes (PostgreSQL row lock; SQLite locks the database).
        # The same rule as the approval's (provisioning.launches.selectors.pool_room): running
        # nodes, plus every other approved or launching request at its granted size.
        pool = Pool.objects.select_for_update().get(pk=request.pool_id)
        room = _selectors().pool_room(pool, exclude_request=request.pk)
        used = pool.max_nodes - room
        if run.count > room:
            raise PermanentError(
                f"the {pool.slug} pool has room for {room} more node(s) ({used} of "
                f"{pool.max_nodes} in use or promised); this launch needs {run.count}",
                code="no_room",
            )
        moved = _services().transition(
            request.pk,
            [models.LaunchState.APPROVED],
            models.LaunchState.LAUNCHING,
            source="task",
            detail={"room": f"{run.count} of the {pool.slug} pool's {pool.max_nodes} nodes"},
        )
        if not moved:
            return 0  # cancelled meanwhile: nothing claimed
        LaunchExecution.objects.filter(pk=run.execution.pk).update(
            phase=CREDENTIALS,
            started_at=clock.now(),
            capacity_type=request.capacity_type,
            failures=0,
        )
        _services().step_record(
            request.pk,
            STEP_NAMES[ROOM],
            detail=f"{used + run.count} of {pool.max_nodes} {pool.slug} nodes in use or promised "
            "with this launch",
        )
    return 0


def generation(request: Any) -> int:
    return int(getattr(request, "attempt", 0) or 0)


def bootstrap_token(request: Any) -> str:
    """The launch's bootstrap token, ``id.secret`` (kubeadm's ``[a-z0-9]{6}.[a-z0-9]{16}``),
    derived from SECRET_KEY, the request and its generation: a step run again writes the same
    user data (so the ClientToken's parameters match) without the secret ever being stored."""
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    digest = hmac.new(
        settings.SECRET_KEY.encode(),
        f"clusterweb-launch-token:{request.pk}:{generation(request)}".encode(),
        hashlib.sha256,
    ).digest()
    chars = "".join(alphabet[b % len(alphabet)] for b in digest[:22])
    return f"{chars[:6]}.{chars[6:22]}"


def client_token(request: Any, capacity_type: str) -> str:
    """RunInstances' ClientToken: one per (cluster, request, step, capacity type, generation),
    at most 64 characters. A retry of the same call can only get the first call's instances."""
    cluster = hashlib.sha256(settings.CLUSTER_NAME.encode()).hexdigest()[:8]
    kind = "spot" if capacity_type == "spot" else "od"
    return f"cw-{cluster}-r{request.pk}-capacity-{kind}-g{generation(request)}"[:64]


def node_labels(request: Any, capacity_type: str) -> dict[str, str]:
    return {
        "clusterweb.io/pool": request.pool.slug,
        "clusterweb.io/owner": _uid(request.owner),
        "clusterweb.io/request": str(request.pk),
        "clusterweb.io/capacity-type": capacity_type,
    }


def node_taint(request: Any) -> str:
    return f"clusterweb.io/request={request.pk}:NoSchedule"


def _uid(user: Any) -> str:
    return str(getattr(user, "username", user))


def user_data(request: Any, capacity_type: str, token: str) -> str:
    """The join script (docs/node-join.md) with the request's labels and taint, plus the pool's
    own taints (a GPU pool's)."""
    if not settings.KUBE_CA_CERT_HASH:
        raise PermanentError(
            "KUBE_CA_CERT_HASH is not set: new nodes cannot pin the cluster's CA to join",
            code="config",
        )
    endpoint = settings.KUBE_JOIN_ENDPOINT or _kube().api_server_endpoint()
    taints = [*list(request.pool.taints or []), node_taint(request)]
    try:
        return join_script(
            JoinSpec(
                api_server=endpoint,
                token=token,
                ca_cert_hash=settings.KUBE_CA_CERT_HASH,
                labels=node_labels(request, capacity_type),
                taints=taints,
            )
        )
    except ValueError as exc:
        raise PermanentError(f"cannot write the join script: {exc}", code="join_script") from exc


def _credentials(run: Run) -> float:
    _step_begin(run)
    # Valid for two join timeouts: the wait for the join starts only once the instances are
    # launched (a fallback or a retried step may come first); the stop deletes it either way.
    expiration = clock.now() + 2 * _join_timeout()
    token = bootstrap_token(run.request)
    user_data(run.request, run.execution.capacity_type or run.request.capacity_type, token)
    # The token outlives the wait for the join a little (clock skew between us and the API
    # server); the stop deletes it either way.
    _kube().bootstrap_token_create(
        token, expiration, description=f"Clusterweb launch request {run.request.pk}"
    )
    if run.goto(CAPACITY, token_id=token.split(".")[0], deadline=None):
        _step_end(run, "done", f"bootstrap token {token.split('.')[0]} valid for the join")
    return 0


def expires_at(started_at: datetime, hours: int) -> datetime:
    """``clusterweb:expires-at`` at launch: start + join timeout + the request's hours (the
    backstop terminates instances past it). Rewritten to running + hours once running."""
    return started_at + _join_timeout() + timedelta(hours=hours)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def instance_tags(request: Any, started_at: datetime, hours: int) -> dict[str, str]:
    return {
        aws.CLUSTER_TAG: settings.CLUSTER_NAME,
        "clusterweb:pool": request.pool.slug,
        "clusterweb:owner": _uid(request.owner),
        aws.REQUEST_TAG: str(request.pk),
        aws.EXPIRES_TAG: _iso(expires_at(started_at, hours)),
        "Name": f"clusterweb-{request.pool.slug}-r{request.pk}",
    }


def _alive(instances: list[aws.InventoryInstance]) -> list[aws.InventoryInstance]:
    return [i for i in instances if i.state not in (NodeState.SHUTTING_DOWN, NodeState.TERMINATED)]


def _capacity(run: Run) -> float:
    request, ex = run.request, run.execution
    _step_begin(run)
    capacity_type = ex.capacity_type or request.capacity_type
    # Before every RunInstances: what does AWS already run for this request? A worker that died
    # after the call (or a call that timed out but happened) left instances carrying the tag.
    found = _alive(aws.request_instances(settings.CLUSTER_NAME, str(request.pk)))
    if found:
        ids = [i.instance_id for i in found]
        deadline = clock.now() + _join_timeout()
        if run.goto(JOIN, instance_ids=ids, capacity_type=found[0].lifecycle, deadline=deadline):
            _step_end(
                run, "done", f"found {len(ids)} instance(s) already launched: {', '.join(ids)}"
            )
        return 0
    failpoint("launch.before_run_instances")
    pool = request.pool
    spec = aws.LaunchSpec(
        launch_template_id=pool.launch_template_id,
        instance_type=request.instance_type,
        count=run.count,
        capacity_type=capacity_type,
        user_data=user_data(request, capacity_type, bootstrap_token(request)),
        tags=instance_tags(request, ex.started_at or clock.now(), run.hours),
        client_token=client_token(request, capacity_type),
        zone=(pool.zones or [""])[0],
    )
    if not pool.launch_template_id:
        raise PermanentError(f"the {pool.slug} pool has no launch template", code="config")
    try:
        launched = aws.instances_launch(spec)
    except IntegrationError as exc:
        if exc.code not in aws.SPOT_FALLBACK_CODES:
            raise
        return _fallback(run, capacity_type, exc)
    failpoint("launch.after_run_instances")
    ids = [i.instance_id for i in launched]
    deadline = clock.now() + _join_timeout()
    if run.goto(JOIN, instance_ids=ids, capacity_type=capacity_type, deadline=deadline):
        _step_end(
            run,
            "done",
            f"launched {len(ids)} {capacity_type} {request.instance_type}: " + ", ".join(ids),
        )
    else:
        _launched_after_stop(run, ids)
    return 0


def _launched_after_stop(run: Run, ids: list[str]) -> None:
    """The request left ``launching`` while RunInstances ran (a stop, a failure; with a lease
    that lapsed during a slow call, perhaps already ended): the stop steps may have looked for
    its instances before these existed, or before EC2's eventually consistent DescribeInstances
    showed them. The step that launched them takes them down, so nothing runs untracked.
    Not when it is ``running``: a second delivery carried it there with these same instances
    (the same ClientToken answers the same reservation)."""
    models = _models()
    state = models.LaunchRequest.objects.filter(pk=run.request.pk).values_list("state", flat=True)
    if state.first() in (models.LaunchState.LAUNCHING, models.LaunchState.RUNNING):
        return
    LaunchExecution.objects.filter(pk=run.execution.pk).update(instance_ids=ids)
    aws.instances_terminate(ids)
    logger.warning(
        "launch %s stopped while RunInstances ran: terminated %s", run.request.pk, ", ".join(ids)
    )


def _fallback(run: Run, capacity_type: str, exc: IntegrationError) -> float:
    """Spot capacity is short: on-demand when the request allows it (re-quoted; a maximum the
    approval did not cover goes back to approval), else a clear failure."""
    request = run.request
    allowed = bool(getattr(request, "allow_on_demand_fallback", False))
    if capacity_type != "spot" or not allowed:
        what = "spot" if capacity_type == "spot" else "on-demand"
        hint = "" if capacity_type != "spot" else " (the request does not allow on-demand fallback)"
        raise PermanentError(
            f"AWS has no {what} capacity for {run.count} x {request.instance_type} "
            f"({exc.code}){hint}",
            code=exc.code,
        ) from exc
    reason = f"spot capacity short ({exc.code})"
    if _fallback_needs_approval(run, reason):
        return 0
    if run.goto(CAPACITY, capacity_type="on-demand", fell_back=True, fallback_reason=reason):
        _step_note(run, f"{reason}: launching on-demand instead")
    return 0


def _fallback_needs_approval(run: Run, reason: str) -> bool:
    """Re-quote on-demand. A maximum over what was approved and over the policy's threshold sends
    the request back to approval (as on-demand, a new attempt); True when it went back."""
    from provisioning.launches import quotes
    from provisioning.launches.models import ApprovalPolicy

    models = _models()
    request = run.request
    quote = quotes.launch_quote(
        pool=request.pool,
        instance_type=request.instance_type,
        count=run.count,
        hours=run.hours,
        capacity_type="on-demand",
        owner=_uid(request.owner),
    )
    approved = request.granted_max_cost
    threshold = ApprovalPolicy.current().threshold
    if quote.max_cost is None or approved is None:
        over = quote.max_cost is None
    else:
        over = quote.max_cost > approved and quote.max_cost > threshold
    if not over:
        return False
    note = (
        f"{reason}: on-demand would cost up to ${quote.max_cost}, more than the approved "
        f"${approved}; approve again to launch on-demand"
    )
    _kube().bootstrap_token_delete(bootstrap_token(request).split(".")[0])
    with transaction.atomic():
        moved = _services().transition(
            request.pk,
            [models.LaunchState.LAUNCHING],
            models.LaunchState.PENDING_APPROVAL,
            source="task",
            detail={"fallback": reason, "max_cost": str(quote.max_cost)},
            capacity_type="on-demand",
            attempt=F("attempt") + 1,
            approval_reason=note[:500],
            hourly=quote.hourly,
            hourly_kind=quote.hourly_kind,
            hourly_source=quote.hourly_source[:500],
            expected_cost=quote.expected_cost,
            max_cost=quote.max_cost,
            quoted_at=clock.now(),
            # What is asked now is what was granted (an approver may have cut it), on-demand;
            # the first decision is over: a person decides again.
            count=run.count,
            hours=run.hours,
            approved_count=None,
            approved_hours=None,
            approved_hourly=None,
            approved_expected_cost=None,
            approved_max_cost=None,
            decided_by=None,
            decided_by_username="",
            decided_at=None,
            decision_note="",
            self_approved=False,
            auto_approved=False,
            admins_notified_at=None,
        )
        if moved:
            LaunchExecution.objects.filter(pk=run.execution.pk).update(
                phase="", token_id="", deadline=None, fell_back=True, fallback_reason=reason
            )
            _step_end(run, "failed", note)
            transaction.on_commit(lambda: _admins_notify(request.pk), robust=True)
    return True


def _admins_notify(request_id: int) -> None:
    from clusterweb.tasking import enqueue
    from provisioning.launches import tasks

    enqueue(tasks.launch_admins_notify, request_id)


def _record_inventory(instances: list[aws.InventoryInstance], nodes: list[k8s.Node]) -> None:
    inventory.instances_record(instances, nodes, now=clock.now())


def _join(run: Run) -> float:
    request, ex = run.request, run.execution
    _step_begin(run)
    instances = aws.request_instances(settings.CLUSTER_NAME, str(request.pk))
    mine = [i for i in instances if i.instance_id in set(ex.instance_ids)] or instances
    nodes = _kube().nodes_list(f"clusterweb.io/request={request.pk}")
    _record_inventory(mine, nodes)
    gone = [i for i in mine if i.state in (NodeState.SHUTTING_DOWN, NodeState.TERMINATED)]
    if gone:
        first = gone[0]
        why = first.state_reason_message or first.state_reason_code or first.state
        if first.spot_interrupted:
            LaunchExecution.objects.filter(pk=ex.pk).update(interrupted=True)
        raise PermanentError(
            f"instance {first.instance_id} ended before joining: {why}", code="instance_ended"
        )
    ready = {inventory.instance_id_from_provider(n.provider_id) for n in nodes if n.ready} & {
        i.instance_id for i in mine
    }
    running = sum(i.state == NodeState.RUNNING for i in mine)
    detail = f"{running} of {run.count} running, {len(ready)} of {run.count} Ready nodes"
    if len(ready) >= run.count and running >= run.count:
        failpoint("launch.after_join")
        if run.goto(WORKLOAD, deadline=None):
            _step_end(run, "done", detail)
        return 0
    if _past(ex.deadline):
        raise PermanentError(
            f"the nodes did not join within {settings.LAUNCH_JOIN_TIMEOUT_SECONDS} s ({detail})",
            code="join_timeout",
        )
    _step_note(run, detail)
    return settings.LAUNCH_POLL_SECONDS


def _workload(run: Run) -> float | None:
    if run.request.kind != "spark":
        # GPU nodes and Jupyter servers bring their own workload (later issues): their nodes
        # being Ready is what running means here.
        return _running(run, f"{run.count} node(s) Ready")
    _step_begin(run)
    applied = _kube().deployment_apply(
        spark.NAMESPACE, spark.worker_deployment(run.request.pk, run.count)
    )
    failpoint("launch.after_workload")
    if run.goto(REGISTER, deadline=clock.now() + _join_timeout()):
        _step_end(run, "done", f"Deployment {spark.NAMESPACE}/{applied.name} {applied.action}")
    return 0


def _register(run: Run) -> float | None:
    request = run.request
    _step_begin(run)
    kube = _kube()
    pods = kube.pods_list(spark.NAMESPACE, spark.worker_label_selector(request.pk))
    hosts = [p.ip for p in pods] + [p.name for p in pods]
    status = kube.service_proxy_json(
        spark.NAMESPACE, spark.MASTER_SERVICE, spark.MASTER_HTTP_PORT, "json/"
    )
    found = spark.registration(status, hosts, run.count)
    detail = f"{found.alive} of {run.count} workers registered with the Spark master"
    if found.complete:
        return _running(run, detail)
    if _past(run.execution.deadline):
        raise PermanentError(
            f"the workers did not register within {settings.LAUNCH_JOIN_TIMEOUT_SECONDS} s "
            f"({detail})",
            code="register_timeout",
        )
    _step_note(run, detail)
    return settings.LAUNCH_POLL_SECONDS


def _running(run: Run, detail: str) -> None:
    models = _models()
    request = run.request
    now = clock.now()
    ends = now + timedelta(hours=run.hours)
    # The backstop's tag follows the real end: running + hours.
    aws.instances_tag(run.execution.instance_ids, {aws.EXPIRES_TAG: _iso(ends)})
    with transaction.atomic():
        moved = _services().transition(
            request.pk,
            [models.LaunchState.LAUNCHING],
            models.LaunchState.RUNNING,
            source="task",
            detail={"registered": detail},
            now=now,
            running_at=now,
            expires_at=ends,
        )
        if moved:
            LaunchExecution.objects.filter(pk=run.execution.pk).update(phase="", deadline=None)
            _step_end(run, "done", detail)
    return None


# --- Stop and failure ----------------------------------------------------------------------------
def launch_stop(
    request_id: Any,
    *,
    by: Any,
    reason: str | None = None,
    request: Any = None,
    source: str = "",
) -> Any:
    """Stop a launch: its owner, its requester or an admin may. A request that runs nothing yet
    is cancelled instead; one already stopping or ended is left as it is (a second click changes
    nothing). ``reason``: the ``stop_reason`` (default ``owner`` for the owner's own stop,
    ``admin`` otherwise). Returns the request as it now is."""
    from django.core.exceptions import PermissionDenied

    from clusterweb.permissions import is_admin
    from clusterweb.tasking import enqueue_on_commit
    from provisioning.launches import tasks

    models = _models()
    services = _services()
    launch = services._load(request_id)
    own = getattr(by, "pk", None) in (launch.requested_by_id, launch.owner_id)
    if not own and not is_admin(by):
        raise PermissionDenied("You may stop only your own launches.")
    if launch.state in services.CANCELLABLE_STATES:
        try:
            return services.cancel(launch.pk, by=by, request=request, source=source)
        except services.LaunchStateError:
            launch.refresh_from_db()  # it started launching meanwhile: stop it below
    stop_reason = reason or (models.StopReason.OWNER if own else models.StopReason.ADMIN)
    with transaction.atomic():
        moved = services.transition(
            launch.pk,
            [models.LaunchState.LAUNCHING, models.LaunchState.RUNNING],
            models.LaunchState.STOPPING,
            actor=by,
            request=request,
            source=source or ("web" if request is not None else "cli"),
            detail={"stop_reason": str(stop_reason)},
            stop_reason=stop_reason,
        )
        if moved:
            enqueue_on_commit(tasks.launch_advance, launch.pk)
    launch.refresh_from_db()
    return launch


def launches_stop_for(user: Any, *, actor: Any = None, source: str = "") -> int:
    """Stop every launching or running launch of ``user`` (a User or a uid) with
    ``stop_reason`` ``disabled``: called when the person is disabled (their pending requests
    are cancelled by ``services.cancel_pending_for``). Returns how many began stopping."""
    from clusterweb.tasking import enqueue_on_commit
    from provisioning.launches import tasks

    models = _models()
    uid = user if isinstance(user, str) else user.username
    stopped = 0
    ids = models.LaunchRequest.objects.filter(
        owner__username__iexact=uid,
        state__in=(models.LaunchState.LAUNCHING, models.LaunchState.RUNNING),
    ).values_list("pk", flat=True)
    for pk in list(ids):
        with transaction.atomic():
            if _services().transition(
                pk,
                [models.LaunchState.LAUNCHING, models.LaunchState.RUNNING],
                models.LaunchState.STOPPING,
                actor=actor,
                source=source or "task",
                detail={"reason": f"{uid} was disabled"},
                stop_reason=models.StopReason.DISABLED,
            ):
                stopped += 1
                enqueue_on_commit(tasks.launch_advance, pk)
    return stopped


def launch_fail(*, request_id: int, error: str) -> bool:
    """A launch that cannot go on: ``stopping`` with ``stop_reason=failed`` and the error, so the
    stop steps remove what it started; it ends ``failed`` and the requester is told."""
    models = _models()
    return _services().transition(
        request_id,
        [models.LaunchState.APPROVED, models.LaunchState.LAUNCHING, models.LaunchState.RUNNING],
        models.LaunchState.STOPPING,
        source="task",
        detail={"error": error[:200]},
        error=error,
        stop_reason=models.StopReason.FAILED,
    )


def _stop_workload(run: Run) -> float:
    _step_begin(run)
    gone = not _kube().deployment_delete(spark.NAMESPACE, spark.worker_name(run.request.pk))
    if run.goto(TERMINATE):
        _step_end(run, "done", "no workload to remove" if gone else "worker Deployment deleted")
    return 0


def _request_instances(run: Run) -> list[aws.InventoryInstance]:
    """The request's instances by tag, and those RunInstances answered (a tag filter may not
    show an instance launched a moment ago: DescribeInstances is eventually consistent)."""
    return aws.request_instances(
        settings.CLUSTER_NAME, str(run.request.pk), instance_ids=run.execution.instance_ids or ()
    )


def _unseen(run: Run, instances: list[aws.InventoryInstance]) -> list[str]:
    """Launched ids that EC2 shows under neither filter and that the inventory does not know
    as terminated (EC2 forgets a terminated instance after about an hour)."""
    seen = {i.instance_id for i in instances}
    missing = [i for i in run.execution.instance_ids or () if i not in seen]
    if not missing:
        return []
    gone = set(
        Node.objects.filter(instance_id__in=missing, state=NodeState.TERMINATED).values_list(
            "instance_id", flat=True
        )
    )
    return [i for i in missing if i not in gone]


def _terminate(run: Run) -> float:
    _step_begin(run)
    alive = _alive(_request_instances(run))
    aws.instances_terminate([i.instance_id for i in alive])
    if run.goto(TERMINATED, deadline=clock.now() + _join_timeout()):
        _step_end(
            run,
            "done",
            f"terminating {', '.join(i.instance_id for i in alive)}" if alive else "no instances",
        )
    return 0


def _terminated(run: Run) -> float:
    _step_begin(run)
    instances = _request_instances(run)
    nodes = _kube().nodes_list(f"clusterweb.io/request={run.request.pk}")
    _record_inventory(instances, nodes)
    if any(i.spot_interrupted for i in instances):
        LaunchExecution.objects.filter(pk=run.execution.pk).update(interrupted=True)
    left = [i for i in instances if i.state != NodeState.TERMINATED]
    if left:
        # Something launched after the terminate call (a step that was still running), or a
        # terminate that did not take: terminate again; EC2 ignores it for shutting-down ones.
        again = [i.instance_id for i in left if i.state != NodeState.SHUTTING_DOWN]
        aws.instances_terminate(again)
        _step_note(run, f"{len(left)} instance(s) not terminated yet")
        return settings.LAUNCH_POLL_SECONDS
    unseen = _unseen(run, instances)
    if unseen and not _past(run.execution.deadline):
        # RunInstances answered them, but EC2 does not show them yet: look again.
        _step_note(run, f"{len(unseen)} launched instance(s) not visible yet: {', '.join(unseen)}")
        return settings.LAUNCH_POLL_SECONDS
    # Volumes its instances leave behind (a launch template's DeleteOnTermination false) carry
    # the request's tag and bill until deleted; the ones EC2 deletes go `deleting`.
    volumes = [
        v
        for v in aws.request_volumes(settings.CLUSTER_NAME, str(run.request.pk))
        if v.state not in ("deleting", "deleted")
    ]
    if volumes:
        aws.volumes_delete([v.volume_id for v in volumes if v.state == "available"])
        if not _past(run.execution.deadline):
            _step_note(run, f"deleting {len(volumes)} volume(s) left behind")
            return settings.LAUNCH_POLL_SECONDS
        logger.error(
            "launch %s: volume(s) %s not deleted in time",
            run.request.pk,
            ", ".join(f"{v.volume_id} ({v.state})" for v in volumes),
        )
    if nodes and not _past(run.execution.deadline):
        # The cloud controller deletes a terminated instance's Node shortly after: wait for it,
        # so the launch leaves no Node behind (past the deadline, the inventory records the rest).
        _step_note(run, f"{len(nodes)} node(s) still registered")
        return settings.LAUNCH_POLL_SECONDS
    if run.goto(STOP_CREDENTIALS, deadline=None):
        _step_end(
            run,
            "done",
            f"{len(instances)} instance(s) terminated, no volume left, their nodes gone",
        )
    return 0


def _stop_credentials(run: Run) -> float:
    _step_begin(run)
    token_id = run.execution.token_id or bootstrap_token(run.request).split(".")[0]
    deleted = _kube().bootstrap_token_delete(token_id)
    if run.goto(COST):
        _step_end(run, "done", "bootstrap token deleted" if deleted else "no bootstrap token left")
    return 0


def actual_cost(request_id: int) -> Decimal:
    """The launch's cost so far from the cost rows (its instances' rows carry the request)."""
    from billing.models import CostRow

    total = CostRow.objects.filter(request=str(request_id)).aggregate(total=Sum("cost"))["total"]
    return Decimal(total or 0).quantize(Decimal("0.01"))


def cost_reasons(request: Any, execution: LaunchExecution, actual: Decimal) -> list[str]:
    """Why the actual cost differs from the quote, in the requester's words."""
    reasons = []
    if execution.fell_back:
        reasons.append(f"launched on-demand instead of spot: {execution.fallback_reason}")
    if execution.interrupted:
        reasons.append("AWS interrupted a spot instance")
    running_at = getattr(request, "running_at", None)
    ended = clock.now()
    if running_at is not None:
        ran = (ended - running_at).total_seconds() / 3600
        planned = float(getattr(request, "approved_hours", None) or request.hours)
        if ran < planned * 0.95:
            reasons.append(f"ran {ran:.1f} h of the {planned:g} h quoted")
        elif ran > planned * 1.05:
            reasons.append(f"ran {ran:.1f} h, longer than the {planned:g} h quoted")
    else:
        reasons.append("never reached running: only the launch attempt was billed")
    moved = _price_moved(request, execution)
    if moved:
        reasons.append(moved)
    return reasons


def _price_moved(request: Any, execution: LaunchExecution) -> str:
    """ "the spot price moved" when the instances' cost rows average another hourly price than
    the quoted one (by more than 5 %): the hours they ran, at the quoted price, against what
    they cost. Empty when they agree, or when no price was quoted."""
    from billing.models import CostRow, ResourceKind

    quoted = getattr(request, "approved_hourly", None) or getattr(request, "hourly", None)
    if execution.fell_back or not quoted:
        return ""
    rows = CostRow.objects.filter(
        request=str(request.pk), resource_kind=ResourceKind.NODE, price__isnull=False
    ).aggregate(hours=Sum("usage"), cost=Sum("cost"))
    hours, cost = rows["hours"], rows["cost"]
    if not hours or cost is None:
        return ""
    paid = (Decimal(cost) / Decimal(hours)).quantize(Decimal("0.0001"))
    if abs(paid - Decimal(quoted)) <= Decimal(quoted) * Decimal("0.05"):
        return ""
    return (
        f"the spot price moved: quoted ${Decimal(quoted).normalize():f}/h, "
        f"${paid.normalize():f}/h on average"
    )


def _cost(run: Run) -> float | None:
    from billing.costs.services import cost_rows_refresh

    models = _models()
    _step_begin(run)
    if not cost_rows_refresh().claimed:
        # Another run (the periodic cost-refresh) holds the refresh: its rows may predate the
        # termination. Look again rather than record a stale sum as the final cost.
        _step_note(run, "the cost rows are being refreshed by another run; looking again")
        return settings.LAUNCH_POLL_SECONDS
    actual = actual_cost(run.request.pk)
    request = models.LaunchRequest.objects.get(pk=run.request.pk)
    execution = LaunchExecution.objects.get(pk=run.execution.pk)
    reasons = cost_reasons(request, execution, actual)
    final = (
        models.LaunchState.FAILED
        if request.stop_reason == models.StopReason.FAILED
        else models.LaunchState.STOPPED
    )
    with transaction.atomic():
        moved = _services().transition(
            request.pk,
            [models.LaunchState.STOPPING],
            final,
            source="task",
            detail={"actual_cost": str(actual)},
            ended_at=clock.now(),
        )
        if moved:
            LaunchExecution.objects.filter(pk=execution.pk).update(
                actual_cost=actual, cost_reasons=reasons, phase=""
            )
            _step_end(run, "done", f"${actual} (quoted ${request.expected_cost})")
            transaction.on_commit(lambda: _ended_notify(request.pk), robust=True)
    return None


def _ended_notify(request_id: int) -> None:
    from clusterweb.tasking import enqueue
    from provisioning.launches import tasks

    enqueue(tasks.launch_ended_notify, request_id)


STEPS = {
    ROOM: _room,
    CREDENTIALS: _credentials,
    CAPACITY: _capacity,
    JOIN: _join,
    WORKLOAD: _workload,
    REGISTER: _register,
    STOP_WORKLOAD: _stop_workload,
    TERMINATE: _terminate,
    TERMINATED: _terminated,
    STOP_CREDENTIALS: _stop_credentials,
    COST: _cost,
}
