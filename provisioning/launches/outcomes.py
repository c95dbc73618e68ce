"""What a launch cost against what it was quoted, for its page, ``request ID --json`` and the
email when it ends; and that email, sent once."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from billing.money import amount_str
from provisioning.launches.execution_models import LaunchExecution
from provisioning.launches.models import LaunchRequest, LaunchState, StopReason

ENDED = (LaunchState.STOPPED, LaunchState.FAILED)


@dataclass(frozen=True)
class Outcome:
    expected: str | None  # the quote (approved size), "12.34"
    maximum: str | None
    actual: str | None  # None until the launch ended
    reasons: list[str] = field(default_factory=list)
    capacity_type: str = ""  # what was launched: spot, or on-demand after a fallback
    fell_back: bool = False
    interrupted: bool = False
    stop_reason_label: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "expected_cost": self.expected,
            "max_cost": self.maximum,
            "actual_cost": self.actual,
            "reasons": self.reasons,
            "capacity_type": self.capacity_type or None,
            "fell_back_to_on_demand": self.fell_back,
            "spot_interrupted": self.interrupted,
        }


def _amount(value: Decimal | None) -> str | None:
    return None if value is None else amount_str(value)


_UNREAD: Any = object()


def outcome_of(launch: LaunchRequest, execution: LaunchExecution | None = _UNREAD) -> Outcome:
    """``execution``: the launch's execution row when the caller read it already (a list reads
    them all in one query); None means it has none."""
    if execution is _UNREAD:
        execution = LaunchExecution.objects.filter(request=launch).first()
    expected = launch.approved_expected_cost or launch.expected_cost
    label = StopReason(launch.stop_reason).label if launch.stop_reason else ""
    if execution is None:
        return Outcome(
            _amount(expected), _amount(launch.granted_max_cost), None, [], "", False, False, label
        )
    return Outcome(
        expected=_amount(expected),
        maximum=_amount(launch.granted_max_cost),
        actual=_amount(execution.actual_cost),
        reasons=list(execution.cost_reasons or []),
        capacity_type=execution.capacity_type,
        fell_back=execution.fell_back,
        interrupted=execution.interrupted,
        stop_reason_label=label,
    )


def launch_ended_notify(*, request_id: int) -> bool:
    """Email the requester (and the owner) that the launch ended, once (claimed with
    ``notified_state``). Returns whether a mail went out; a failure gives the claim back."""
    from clusterweb.integrations import mail
    from provisioning.launches.services import request_url, requester_mail_once

    launch = LaunchRequest.objects.select_related("owner", "requested_by").get(pk=request_id)
    if launch.state not in ENDED:
        return False
    return requester_mail_once(
        launch,
        lambda to: mail.launch_ended_send(
            to=to, launch=launch, outcome=outcome_of(launch), request_url=request_url(launch.pk)
        ),
    )
