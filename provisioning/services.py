"""Writes to node pools: one pool from the Pools page, or many from a JSON or YAML file
(``manage.py pools load``). Admins only, validated as a whole, audited.

A pool file is ``{"pools": [POOL, ...]}`` (or the bare list), each POOL as ``pools --json`` prints
it: ``slug``, ``kind`` (base/burst), ``instance_types``, ``lifecycle`` (spot/on-demand),
``on_demand_fallback``, ``max_nodes``, ``max_hours`` (null: no limit; burst pools need one),
``zones``, ``subnets``, ``launch_template_name``, ``launch_template_id``, ``labels``, ``taints``
(kubectl form ``key=value:Effect``). Pools the file does not name are left as they are.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpRequest

from clusterweb import clock
from clusterweb.audit.services import audit_record
from clusterweb.errors import PermanentError
from clusterweb.integrations.k8s import Taint
from clusterweb.permissions import is_admin
from provisioning.models import Lifecycle, Pool, PoolKind

SLUG_RE = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
INSTANCE_TYPE_RE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9-]+$")
ZONE_RE = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}[a-z]$")
SUBNET_RE = re.compile(r"^subnet-[0-9a-f]{8,17}$")
TEMPLATE_NAME_RE = re.compile(r"^[A-Za-z0-9().\/_-]{3,128}$")
TEMPLATE_ID_RE = re.compile(r"^lt-[0-9a-f]{8,17}$")
# Kubernetes label keys: an optional DNS-subdomain prefix and a name; values may be empty.
_LABEL_NAME = r"[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?"
LABEL_KEY_RE = re.compile(rf"^([a-z0-9]([a-z0-9.-]{{0,251}}[a-z0-9])?/)?{_LABEL_NAME}$")
LABEL_VALUE_RE = re.compile(rf"^({_LABEL_NAME})?$")
MAX_NODES_LIMIT = 1000
MAX_HOURS_LIMIT = 24 * 366
FIELDS = (
    "slug",
    "kind",
    "instance_types",
    "lifecycle",
    "on_demand_fallback",
    "max_nodes",
    "max_hours",
    "zones",
    "subnets",
    "launch_template_name",
    "launch_template_id",
    "labels",
    "taints",
)


class PoolInputError(ValueError):
    """Bad pool input; ``field`` names the field (the command line exits 2)."""

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class PoolSpec:
    """A validated pool, as stored."""

    slug: str
    kind: str
    instance_types: list[str]
    lifecycle: str
    on_demand_fallback: bool
    max_nodes: int
    max_hours: int | None
    zones: list[str] = field(default_factory=list)
    subnets: list[str] = field(default_factory=list)
    launch_template_name: str = ""
    launch_template_id: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _strings(value: Any, name: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [v for v in re.split(r"[\s,]+", value) if v]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise PoolInputError(f"{name} must be a list of strings", field=name)
    return list(dict.fromkeys(v.strip() for v in value if v.strip()))


def _whole(value: Any, name: str, *, minimum: int, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise PoolInputError(f"{name} must be a whole number", field=name)
    try:
        number = int(value)
    except ValueError:
        raise PoolInputError(f"{name} must be a whole number, not {value!r}", field=name) from None
    if not minimum <= number <= maximum:
        raise PoolInputError(f"{name} must be between {minimum} and {maximum}", field=name)
    return number


def _flag(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if value in (None, "", 0, "0", "false", "no", "off"):
        return False
    if value in (1, "1", "true", "yes", "on"):
        return True
    raise PoolInputError(f"{name} must be true or false", field=name)


def pool_spec_clean(data: Mapping[str, Any]) -> PoolSpec:
    """Validate one pool (a mapping as in a pool file or from the form); PoolInputError names the
    first bad field."""
    if not isinstance(data, Mapping):
        raise PoolInputError("a pool must be an object of fields")
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise PoolInputError(f"unknown field {unknown[0]!r}", field=unknown[0])
    slug = str(data.get("slug") or "").strip()
    if not SLUG_RE.match(slug):
        raise PoolInputError(
            "slug must be lowercase letters, digits and dashes, starting with a letter "
            f"(at most 40), not {slug!r}",
            field="slug",
        )
    kind = data.get("kind")
    if kind not in PoolKind.values:
        raise PoolInputError(f"kind must be base or burst, not {kind!r}", field="kind")
    types = _strings(data.get("instance_types"), "instance_types")
    if not types:
        raise PoolInputError(
            "instance_types needs at least one instance type", field="instance_types"
        )
    for name in types:
        if not INSTANCE_TYPE_RE.match(name):
            raise PoolInputError(
                f"instance type must look like m5.xlarge, not {name!r}", field="instance_types"
            )
    lifecycle = data.get("lifecycle")
    if lifecycle not in Lifecycle.values:
        raise PoolInputError(
            f"lifecycle must be spot or on-demand, not {lifecycle!r}", field="lifecycle"
        )
    fallback = _flag(data.get("on_demand_fallback"), "on_demand_fallback")
    if lifecycle == Lifecycle.ON_DEMAND:
        fallback = False  # an on-demand pool has nothing to fall back from
    max_nodes = _whole(data.get("max_nodes"), "max_nodes", minimum=1, maximum=MAX_NODES_LIMIT)
    raw_hours = data.get("max_hours")
    max_hours = (
        None
        if raw_hours in (None, "")
        else _whole(raw_hours, "max_hours", minimum=1, maximum=MAX_HOURS_LIMIT)
    )
    if kind == PoolKind.BURST and max_hours is None:
        # The guardrail against a forgotten launch: every burst node stops by a deadline.
        raise PoolInputError("a burst pool needs max_hours", field="max_hours")
    zones = _strings(data.get("zones"), "zones")
    for zone in zones:
        if not ZONE_RE.match(zone) or not zone.startswith(settings.AWS_REGION):
            raise PoolInputError(
                f"zone must be an availability zone of {settings.AWS_REGION} such as "
                f"{settings.AWS_REGION}a, not {zone!r}",
                field="zones",
            )
    subnets = _strings(data.get("subnets"), "subnets")
    for subnet in subnets:
        if not SUBNET_RE.match(subnet):
            raise PoolInputError(
                f"subnet must look like subnet-0123abcd, not {subnet!r}", field="subnets"
            )
    template_name = str(data.get("launch_template_name") or "").strip()
    if template_name and not TEMPLATE_NAME_RE.match(template_name):
        raise PoolInputError(
            "launch_template_name must be 3-128 letters, digits and ( ) . / _ -",
            field="launch_template_name",
        )
    template_id = str(data.get("launch_template_id") or "").strip()
    if template_id and not TEMPLATE_ID_RE.match(template_id):
        raise PoolInputError(
            f"launch_template_id must look like lt-0123456789abcdef0, not {template_id!r}",
            field="launch_template_id",
        )
    labels = _labels(data.get("labels"))
    taints = _taints(data.get("taints"))
    return PoolSpec(
        slug=slug,
        kind=kind,
        instance_types=types,
        lifecycle=lifecycle,
        on_demand_fallback=fallback,
        max_nodes=max_nodes,
        max_hours=max_hours,
        zones=zones,
        subnets=subnets,
        launch_template_name=template_name,
        launch_template_id=template_id,
        labels=labels,
        taints=taints,
    )


def _labels(value: Any) -> dict[str, str]:
    if value in (None, ""):
        return {}
    if isinstance(value, str):
        pairs = {}
        for line in value.splitlines():
            if line.strip():
                key, sep, val = line.strip().partition("=")
                if not sep:
                    raise PoolInputError(
                        f"label {line.strip()!r} must be written key=value", field="labels"
                    )
                pairs[key.strip()] = val.strip()
        value = pairs
    if not isinstance(value, Mapping):
        raise PoolInputError("labels must be an object of key: value", field="labels")
    labels = {}
    for key, val in value.items():
        if not isinstance(key, str) or not LABEL_KEY_RE.match(key) or len(key) > 316:
            raise PoolInputError(f"{key!r} is not a Kubernetes label key", field="labels")
        if not isinstance(val, str) or len(val) > 63 or not LABEL_VALUE_RE.match(val):
            raise PoolInputError(
                f"label {key} has a value Kubernetes refuses: {val!r}", field="labels"
            )
        labels[key] = val
    return dict(sorted(labels.items()))


def _taints(value: Any) -> list[str]:
    if value in (None, ""):
        return []
    if isinstance(value, str):
        value = [line for line in value.splitlines() if line.strip()]
    if not isinstance(value, list | tuple):
        raise PoolInputError("taints must be a list like key=value:NoSchedule", field="taints")
    taints = []
    for text in value:
        if not isinstance(text, str):
            raise PoolInputError("taints must be a list of strings", field="taints")
        try:
            taint = Taint.parse(text.strip())
        except PermanentError:
            raise PoolInputError(
                f"taint {text.strip()!r} must be key=value:Effect with Effect one of "
                "NoSchedule, PreferNoSchedule, NoExecute",
                field="taints",
            ) from None
        if not taint.key or not LABEL_KEY_RE.match(taint.key):
            raise PoolInputError(f"{taint.key!r} is not a Kubernetes taint key", field="taints")
        if not LABEL_VALUE_RE.match(taint.value):
            raise PoolInputError(f"taint value {taint.value!r} is not valid", field="taints")
        taints.append(str(taint))
    return list(dict.fromkeys(taints))


def pool_spec(pool: Pool) -> PoolSpec:
    return PoolSpec(**{name: getattr(pool, name) for name in FIELDS})


def pool_json(pool: Pool) -> dict[str, Any]:
    """A pool as ``pools --json`` prints it and a pool file holds it (``id`` is the slug)."""
    return {"id": pool.slug, **pool_spec(pool).as_dict()}


def _require_admin(actor: Any, what: str) -> None:
    if not is_admin(actor):
        raise PermissionDenied(f"Only admins may {what}.")


def pools_store(
    specs: Iterable[PoolSpec], *, username: str, now: datetime | None = None
) -> dict[str, list[str]]:
    """Create or update pools by slug (no permission check: for the services below and the
    sandbox seed). Returns the slugs ``created``, ``updated`` and ``unchanged``."""
    now = clock.now() if now is None else now
    outcome: dict[str, list[str]] = {"created": [], "updated": [], "unchanged": []}
    with transaction.atomic():
        for spec in specs:
            values = spec.as_dict()
            pool = Pool.objects.select_for_update().filter(slug=spec.slug).first()
            if pool is None:
                Pool.objects.create(
                    **values, created_at=now, updated_at=now, updated_by_username=username
                )
                outcome["created"].append(spec.slug)
                continue
            changed = [name for name in FIELDS if getattr(pool, name) != values[name]]
            if not changed:
                outcome["unchanged"].append(spec.slug)
                continue
            for name in changed:
                setattr(pool, name, values[name])
            pool.updated_at = now
            pool.updated_by_username = username
            pool.save(update_fields=[*changed, "updated_at", "updated_by_username"])
            outcome["updated"].append(spec.slug)
    return outcome


def pool_types_priced(specs: Iterable[PoolSpec], *, ask_aws: bool) -> None:
    """Refuse a pool whose instance type cannot be priced in AWS_REGION, naming it: a pool must
    never launch what would cost an unknown amount. A type the catalog lacks is asked of AWS's
    Price List Query API first: at once when ``ask_aws`` (the command line), else by the price
    lookup job, enqueued here (a page request never calls AWS) -- the save is refused until the
    answer is in."""
    from billing.prices import lookups

    region = settings.AWS_REGION
    types = {name for spec in specs for name in spec.instance_types}
    missing = types - lookups.priced_types(region, types)
    if not missing:
        return
    if ask_aws:
        run = lookups.price_lookups_run(region=region, types=missing)
        for name, error in sorted(run.failed.items()):
            raise PoolInputError(
                f"instance type {name} has no price in {region} and asking AWS's Price List "
                f"failed: {error}",
                field="instance_types",
            )
    refused = lookups.unpriceable_types(region, missing)
    for name in sorted(refused):
        asked = refused[name].asked_at
        raise PoolInputError(
            f"instance type {name} cannot be priced in {region}: AWS's Price List lists no "
            f"Linux on-demand price for it (asked {asked:%Y-%m-%d %H:%M} UTC)",
            field="instance_types",
        )
    unanswered = sorted(missing - lookups.priced_types(region, missing))
    if unanswered:
        from celery import current_app

        from billing.models import PriceKind
        from billing.prices.services import price_gap_record

        for name in unanswered:
            # The price lookup job asks for every on-demand price gap, not only the pools' types.
            price_gap_record(
                kind=PriceKind.ON_DEMAND, region=region, item=name, context="pool save"
            )
        transaction.on_commit(
            lambda: current_app.send_task("billing.tasks.price_lookups_sync"), robust=True
        )
        raise PoolInputError(
            f"instance type {unanswered[0]} has no price in {region} yet: AWS's Price List is "
            "being asked for it now (the price lookup job); save again in a minute",
            field="instance_types",
        )


def pool_save(
    *,
    actor: Any,
    data: Mapping[str, Any],
    slug: str | None = None,
    request: HttpRequest | None = None,
    source: str = "",
) -> Pool:
    """Create a pool (``slug`` None) or edit pool ``slug`` (its slug stays: node records name
    it) from the Pools page. Audited with the fields changed."""
    _require_admin(actor, "edit pools")
    if slug is not None:
        existing = Pool.objects.filter(slug=slug).first()
        if existing is None:
            raise PoolInputError(f"no pool {slug!r}", field="slug")
        data = {**data, "slug": slug}
        before = pool_spec(existing).as_dict()
    elif Pool.objects.filter(slug=str(data.get("slug") or "").strip()).exists():
        raise PoolInputError(f"a pool {data.get('slug')!r} exists already", field="slug")
    else:
        before = {}
    spec = pool_spec_clean(data)
    pool_types_priced([spec], ask_aws=False)
    pools_store([spec], username=actor.username)
    after = spec.as_dict()
    changed = sorted(k for k in FIELDS if before.get(k) != after[k]) if before else []
    audit_record(
        action="pool.updated" if before else "pool.created",
        actor=actor,
        target=f"pool {spec.slug}",
        detail={"changed": changed} if before else {"pool": after},
        request=request,
        source=source or ("web" if request is not None else "cli"),
    )
    return Pool.objects.get(slug=spec.slug)


def pool_file_read(path: Path) -> list[PoolSpec]:
    """Parse and validate a pool file (JSON, or YAML by its .yaml/.yml suffix). Nothing is
    stored; PoolInputError names the pool and the field of the first problem."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise PoolInputError(f"cannot read {path}: {exc.strerror}", field="file") from None
    if Path(path).suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:  # pragma: no cover - PyYAML ships with the sandbox extras
            raise PoolInputError(
                "reading YAML needs PyYAML installed; write the pools as JSON", field="file"
            ) from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise PoolInputError(f"{path} is not YAML: {exc}", field="file") from None
    else:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise PoolInputError(f"{path} is not JSON: {exc}", field="file") from None
    if isinstance(data, Mapping):
        data = data.get("pools")
    if not isinstance(data, list) or not data:
        raise PoolInputError(f'{path} holds no pools: expected {{"pools": [...]}}', field="file")
    specs, seen = [], set()
    for index, item in enumerate(data):
        label = item.get("slug") if isinstance(item, Mapping) and item.get("slug") else index
        try:
            raw = dict(item) if isinstance(item, Mapping) else item
            if isinstance(raw, dict):
                raw.pop("id", None)  # as `pools --json` prints it
            spec = pool_spec_clean(raw)
        except PoolInputError as exc:
            raise PoolInputError(f"pool {label}: {exc}", field=exc.field) from None
        if spec.slug in seen:
            raise PoolInputError(f"pool {spec.slug} appears twice", field="slug")
        seen.add(spec.slug)
        specs.append(spec)
    return specs


def pools_load(
    *, actor: Any, path: Path, request: HttpRequest | None = None, source: str = ""
) -> dict[str, list[str]]:
    """Create or update the pools of a file, all or none. Audited (``pools.loaded``)."""
    _require_admin(actor, "load pools")
    specs = pool_file_read(path)
    pool_types_priced(specs, ask_aws=True)
    outcome = pools_store(specs, username=actor.username)
    audit_record(
        action="pools.loaded",
        actor=actor,
        target=str(path)[:255],
        detail=outcome,
        request=request,
        source=source or ("web" if request is not None else "cli"),
    )
    return outcome
