"""One label-value rule in the sandbox, the real one (apimachinery validation.IsValidLabelValue:
at most 63 characters matching ``(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?``), used by the
simulator's validation, the hub's label shortening and its launch-request check. Before, the hub
had two lowercase-only copies, so it rewrote or refused valid values such as ``Req-7``."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from sandbox.jupyterhub import profiles
from sandbox.jupyterhub.spawner import request_id_valid
from sandbox.kube.selectors import is_label_value

REAL = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_TEXT = st.text(alphabet="aZ09._-/ é", max_size=70) | st.sampled_from(
    ["", "Req-7", "a" * 63, "a" * 64, "-a", "a-", "A_b.C"]
)


def _real(value: str) -> bool:
    return len(value) <= 63 and REAL.fullmatch(value) is not None


@hsettings(max_examples=300, deadline=None)
@given(_TEXT)
def test_every_sandbox_check_is_the_real_rule(value: str) -> None:
    assert is_label_value(value) == _real(value)
    assert (profiles.label_value(value, value) == value) == _real(value)
    assert request_id_valid(value) == (value != "" and _real(value))


def test_examples() -> None:
    assert profiles.label_value("Req-7", "Req-7") == "Req-7"
    assert request_id_valid("Req-7") and request_id_valid(42)
    assert not request_id_valid("") and not request_id_valid("x" * 64)
