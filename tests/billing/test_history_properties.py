"""History never rewrites itself, as a property (issue 19, finding 1): the inventory's history
only ever grows at its end (a new volume spec from its modification on, a new run from its
restart), and whatever is appended, every piece of cost that ended before it stays exactly as
it was. Pure functions: the pieces the cost refresh writes (``_spans`` cuts a volume's life
at its specs, ``node_typed_runs`` gives each run its type)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.costs import costing
from billing.costs.costing import Transition, node_typed_runs
from billing.costs.services import _spans

pytestmark = pytest.mark.sqlite


def at(day: int, hour: int = 0) -> datetime:
    return datetime(2027, 3, day, hour, tzinfo=UTC)


SIZES = st.integers(min_value=1, max_value=16_384)
TYPES = st.sampled_from(["gp3", "gp2", "io2", "st1"])


@dataclass(frozen=True)
class Spec:
    """What the cost refresh reads of a ``VolumeSpec`` (``(since, value)`` pairs for _spans)."""

    size_gib: int
    volume_type: str


def storage_pieces(history: list[tuple[datetime, Spec]], until: datetime) -> dict:
    """The priced pieces of a volume created on the 1st, as the refresh computes them."""
    prices = {"gp3": Decimal("0.088"), "gp2": Decimal("0.11"), "io2": Decimal("0.138"),
              "st1": Decimal("0.05")}  # fmt: skip
    pieces = {}
    for since, end, spec in _spans(at(1), until, history):
        quote = SimpleNamespace(
            price=prices[spec.volume_type], kind="catalog", source="test", notice=None
        )
        for charge in costing.storage_charges(
            start=since,
            end=end,
            window=(at(1), until),
            gb=Decimal(spec.size_gib),
            quote_at=lambda _at, quote=quote: quote,
        ):
            pieces[charge.start] = (charge.end, charge.cost)
    return pieces


@settings(max_examples=60, deadline=None)
@given(
    changes=st.lists(
        st.tuples(st.integers(min_value=0, max_value=30 * 24 * 60 - 1), SIZES, TYPES),
        min_size=1,
        max_size=8,
        unique_by=lambda change: change[0],
    )
)
def test_a_spec_added_later_never_changes_a_piece_that_ended_before_it(changes):
    changes = sorted(changes)
    history = [(at(1), Spec(100, "gp3"))]
    for minute, size, volume_type in changes:
        when = at(1) + timedelta(minutes=minute + 1)
        before = storage_pieces(history, at(31))
        history.append((when, Spec(size, volume_type)))
        after = storage_pieces(history, at(31))
        ended = {start: piece for start, piece in before.items() if piece[0] <= when}
        assert {start: after.get(start) for start in ended} == ended


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.integers(min_value=1, max_value=20 * 24),
            st.sampled_from(["t2.small", "m5.4xlarge", "g5.xlarge"]),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_a_restart_as_another_type_never_changes_the_runs_before_it(steps):
    transitions = [Transition(at(1), "", "running", "t2.small")]
    moment = at(1)
    for hours, instance_type in steps:
        stop = moment + timedelta(hours=hours)
        start = stop + timedelta(hours=1)
        before = node_typed_runs(
            launched_at=at(1), terminated_at=None, state="running",
            transitions=transitions, now=stop, instance_type="t2.small",
        )  # fmt: skip
        transitions += [
            Transition(stop, "running", "stopped", transitions[-1].instance_type),
            Transition(start, "stopped", "running", instance_type),
        ]
        after = node_typed_runs(
            launched_at=at(1), terminated_at=None, state="running",
            transitions=transitions, now=start + timedelta(hours=1), instance_type=instance_type,
        )  # fmt: skip
        assert after[: len(before)] == before
        assert after[-1] == (start, start + timedelta(hours=1), instance_type)
        moment = start
