"""Input rules for launch requests, shared by the pages and the command line: the Spark request,
approve (perhaps smaller) and reject, and the approval policy. Each form validates and names the
field; the services check again (the forms never write)."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from django import forms
from django.core.exceptions import PermissionDenied

from clusterweb.permissions import is_admin
from provisioning.launches import quotes, selectors, services
from provisioning.launches.models import LaunchKind, LaunchRequest
from provisioning.models import Lifecycle, Pool

# The service's names for a launch's fields, and the form's (the page and CLI say "workers").
_FIELD_NAMES = {"count": "workers", "kind": "__all__", "pool": "__all__"}
NOT_PERMITTED = "not_permitted"


def _owner_from_database(uid: str) -> Any:
    from clusterweb.accounts.models import User

    return User.objects.filter(username__iexact=uid.strip()).first()


class SparkLaunchForm(forms.Form):
    """Spark workers from the ``spark`` pool (or another burst pool). ``user`` is who asks;
    ``owner`` defaults to them (admins may name anyone; a collaborator naming someone else is an
    error with code ``not_permitted``, which the CLI turns into exit 3). ``owner_lookup`` turns a
    uid into a user row (the CLI passes one that asks the directory)."""

    workers = forms.IntegerField(min_value=1, label="Workers")
    instance_type = forms.ChoiceField(label="Instance type")
    capacity_type = forms.ChoiceField(
        choices=Lifecycle.choices, initial=Lifecycle.SPOT, label="Capacity"
    )
    allow_on_demand_fallback = forms.BooleanField(
        required=False, label="Fall back to on-demand when spot capacity is short"
    )
    hours = forms.IntegerField(min_value=1, label="Hours (time limit)")
    owner = forms.CharField(max_length=150, required=False, label="Owner")

    kind = LaunchKind.SPARK

    def __init__(
        self,
        data: Any = None,
        *,
        user: Any,
        pool: Pool,
        owner_lookup: Callable[[str], Any] = _owner_from_database,
        **kwargs: Any,
    ) -> None:
        super().__init__(data, **kwargs)
        self.user = user
        self.pool = pool
        self.owner_lookup = owner_lookup
        self.owner_user: Any = None
        self.room = selectors.pool_room(pool)
        self.fields["instance_type"].choices = [(t, t) for t in pool.instance_types]
        self.fields["instance_type"].error_messages["invalid_choice"] = (
            f"%(value)s is not allowed in pool {pool.slug}: one of {', '.join(pool.instance_types)}"
        )
        if pool.instance_types:
            self.fields["instance_type"].initial = pool.instance_types[0]
        # Bounds for the browser; ``clean`` checks them with the service's words.
        self.fields["workers"].widget.attrs.update({"min": 1, "max": max(self.room, 1)})
        if pool.max_hours:
            self.fields["hours"].widget.attrs.update({"min": 1, "max": pool.max_hours})
        if pool.lifecycle != Lifecycle.SPOT:
            self.fields["capacity_type"].choices = [(Lifecycle.ON_DEMAND, "On-demand")]
            self.fields["capacity_type"].initial = Lifecycle.ON_DEMAND
        # Not disabled where the pool forbids a fallback: asking for one anyway (the CLI's
        # flag, a forged form) must be refused with the reason, not dropped.
        if not pool.on_demand_fallback:
            self.fields[
                "allow_on_demand_fallback"
            ].help_text = f"Pool {pool.slug} does not allow a fallback to on-demand."
        # Not a disabled field: a collaborator's form naming someone else must be refused
        # (and said so), not quietly launched for them.
        self.fields["owner"].initial = getattr(user, "username", "")

    def clean_owner(self) -> str:
        uid = (self.cleaned_data.get("owner") or "").strip() or self.user.username
        if uid.lower() != self.user.username.lower() and not is_admin(self.user):
            raise forms.ValidationError(
                "Collaborators launch only for themselves.", code=NOT_PERMITTED
            )
        try:
            owner = self.owner_lookup(uid)
        except PermissionDenied:
            owner = None
        if owner is None:
            raise forms.ValidationError(f"{uid} is not a user of the cluster.", code="unknown")
        self.owner_user = owner
        return owner.username

    def _launch_fields(self, data: dict[str, Any]) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "instance_type": data.get("instance_type") or None,
            "count": data.get("workers"),
            "hours": data.get("hours"),
            "capacity_type": data.get("capacity_type") or Lifecycle.SPOT,
            "allow_on_demand_fallback": bool(data.get("allow_on_demand_fallback")),
        }

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if any(name in self.errors for name in ("workers", "hours", "instance_type")):
            return data
        problems = services.launch_problems(pool=self.pool, **self._launch_fields(data))
        for field, message in problems.items():
            name = _FIELD_NAMES.get(field, field)
            self.add_error(None if name == "__all__" else name, message)
        return data

    @property
    def not_permitted(self) -> bool:
        return self.has_error("owner", code=NOT_PERMITTED)

    def quote(self) -> quotes.Quote | None:
        """The live quote of what the form holds so far (None while it cannot be priced: no
        valid type, workers or hours yet). For the page's htmx fragment."""
        self.is_valid()
        data = self.cleaned_data if hasattr(self, "cleaned_data") else {}
        fields = self._launch_fields(data)
        if not fields["instance_type"] or not fields["count"] or not fields["hours"]:
            return None
        if fields["instance_type"] not in self.pool.instance_types:
            return None
        return quotes.launch_quote(
            pool=self.pool,
            instance_type=fields["instance_type"],
            count=fields["count"],
            hours=fields["hours"],
            capacity_type=fields["capacity_type"],
            fallback=fields["allow_on_demand_fallback"],
            owner=data.get("owner") or self.user.username,
        )

    def save(self, *, request: Any = None, source: str = "") -> LaunchRequest:
        """Ask for the launch (the form must be valid)."""
        fields = self._launch_fields(self.cleaned_data)
        return services.request_launch(
            requested_by=self.user,
            owner=self.owner_user,
            pool=self.pool,
            request=request,
            source=source,
            **fields,
        )


class ApproveForm(forms.Form):
    """Approve, perhaps smaller: fewer workers and/or fewer hours than asked (empty: as asked).
    The note is optional; with a smaller approval it tells the requester why."""

    workers = forms.IntegerField(min_value=1, required=False, label="Workers to approve")
    hours = forms.IntegerField(min_value=1, required=False, label="Hours to approve")
    note = forms.CharField(
        max_length=2000, required=False, widget=forms.Textarea(attrs={"rows": 2})
    )

    def __init__(self, data: Any = None, *, launch: LaunchRequest, **kwargs: Any) -> None:
        super().__init__(data, **kwargs)
        self.launch = launch
        self.fields["workers"].widget.attrs.update({"min": 1, "max": launch.count})
        self.fields["workers"].initial = launch.count
        self.fields["hours"].widget.attrs.update({"min": 1, "max": launch.hours})
        self.fields["hours"].initial = launch.hours

    def _not_larger(self, name: str, asked: int) -> int | None:
        value = self.cleaned_data.get(name)
        if value is not None and value > asked:
            raise forms.ValidationError(
                f"An approval may be smaller than the request, not larger (asked: {asked})."
            )
        return value

    def clean_workers(self) -> int | None:
        return self._not_larger("workers", self.launch.count)

    def clean_hours(self) -> int | None:
        return self._not_larger("hours", self.launch.hours)

    def save(self, *, by: Any, request: Any = None, source: str = "") -> LaunchRequest:
        data = self.cleaned_data
        return services.approve(
            self.launch.pk,
            by=by,
            note=data.get("note") or "",
            count=data.get("workers"),
            hours=data.get("hours"),
            request=request,
            source=source,
        )


class RejectForm(forms.Form):
    note = forms.CharField(
        max_length=2000, required=False, widget=forms.Textarea(attrs={"rows": 2})
    )

    def __init__(self, data: Any = None, *, launch: LaunchRequest, **kwargs: Any) -> None:
        super().__init__(data, **kwargs)
        self.launch = launch

    def save(self, *, by: Any, request: Any = None, source: str = "") -> LaunchRequest:
        return services.reject(
            self.launch.pk,
            by=by,
            note=self.cleaned_data.get("note") or "",
            request=request,
            source=source,
        )


class ApprovalPolicyForm(forms.Form):
    """The threshold (USD of maximum cost) and, per kind, whether collaborators always need an
    admin's approval."""

    threshold = forms.DecimalField(
        min_value=Decimal("0"), max_digits=10, decimal_places=2, label="Threshold (USD)"
    )
    require_spark = forms.BooleanField(required=False, label="Spark always needs approval")
    require_gpu = forms.BooleanField(required=False, label="GPU always needs approval")
    require_jupyter = forms.BooleanField(required=False, label="Jupyter always needs approval")

    @classmethod
    def initial_from(cls, policy: Any) -> dict[str, Any]:
        return {
            "threshold": policy.threshold,
            **{f"require_{k}": policy.requires(k) for k in LaunchKind.values},
        }

    def save(self, *, by: Any, request: Any = None, source: str = "") -> Any:
        data = self.cleaned_data
        return services.approval_policy_set(
            by=by,
            threshold=data["threshold"],
            require={k: data[f"require_{k}"] for k in LaunchKind.values},
            request=request,
            source=source,
        )
