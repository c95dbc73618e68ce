"""One label-value rule, the real one (apimachinery validation.IsValidLabelValue: at most 63
characters matching ``(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?``), in the simulator's validation
and in the shipped hub configuration's launch-request check (a request id becomes a node selector
value, so the hub must accept exactly the non-empty valid label values)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from tornado import web

from sandbox.kube.selectors import is_label_value
from tests.deploy.test_jupyterhub_config import shipped

REAL = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_TEXT = st.text(alphabet="aZ09._-/ é", max_size=70) | st.sampled_from(
    ["", "Req-7", "a" * 63, "a" * 64, "-a", "a-", "A_b.C"]
)


def _real(value: str) -> bool:
    return len(value) <= 63 and REAL.fullmatch(value) is not None


def _hub_accepts(value: object) -> bool:
    try:
        shipped()["_request_id"](value)
    except web.HTTPError as refused:
        assert refused.status_code == 400
        return False
    return True


@hsettings(max_examples=300, deadline=None)
@given(_TEXT)
def test_every_check_is_the_real_rule(value: str) -> None:
    assert is_label_value(value) == _real(value)
    assert _hub_accepts(value) == (value != "" and _real(value))


@pytest.mark.parametrize(
    ("value", "accepted"),
    [("Req-7", True), (42, True), ("", False), ("x" * 64, False), (True, False), (None, False)],
)
def test_examples(value, accepted) -> None:
    assert _hub_accepts(value) is accepted
