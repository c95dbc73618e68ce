"""Issue 13, finding 9: the self-service reset's per-address counter and its lookup see one
address however it is spelled (NFKC and case folding), and an address whose local part is not
ASCII is refused: PostgreSQL's UPPER() folds a dotless i to I, so 'alıce@' would otherwise find
alice with a counter of its own. Run on PostgreSQL (CI's database)."""

import pytest
from django.core import mail
from django.db import connection
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from clusterweb.accounts.forms import ResetRequestForm
from clusterweb.accounts.selfservice import services as selfservice
from clusterweb.audit.models import AuditEvent
from tests.fixtures.accounts import mirror
from tests.fixtures.hostile_text import disguised, folding_twin, with_combining_marks

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("signup_site")]


@pytest.fixture
def self_service(settings, account_directory):
    settings.PASSWORD_RESET_SELF_SERVICE = True
    mirror()


def test_postgresql_folds_a_dotless_i_into_alices_address(self_service):
    # The premise: on PostgreSQL a case-insensitive match finds alice for 'alıce'.
    assert connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        cursor.execute("SELECT UPPER(%s) = UPPER(%s)", ["alıce@example.org", "alice@example.org"])
        assert cursor.fetchone()[0] is True


@pytest.mark.parametrize("email", ["alıce@example.org", "ALİCE@example.org", "aliſe@example.org"])
def test_a_non_ascii_local_part_finds_nobody(self_service, email):
    assert selfservice.password_reset_self_service(email=email) == 0
    assert mail.outbox == []


def test_a_non_ascii_local_part_is_refused_by_the_form(client, self_service):
    response = client.post("/reset/request/", {"email": "alıce@example.org"})
    assert "ASCII" in response.content.decode()
    assert not AuditEvent.objects.filter(action="account.reset_requested").exists()


def spellings_of_alice():
    return st.one_of(
        st.just("alice@example.org").flatmap(disguised),
        st.sampled_from(["ALICE@EXAMPLE.ORG", "Alice@Example.Org", " alice@example.org "]),
        st.just("alice@example.org").map(lambda a: "".join(folding_twin(c) for c in a)),
        # Combining marks in the local part: a real accent, so another (non-ASCII) address.
        st.just("alice").flatmap(with_combining_marks).map(lambda local: local + "@example.org"),
    )


@hsettings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(spelling=spellings_of_alice())
def test_every_spelling_of_an_address_shares_its_counter(client, self_service, settings, spelling):
    settings.ACCOUNTS_ATTEMPT_LIMIT = 2
    AuditEvent.objects.all().delete()
    from clusterweb.accounts.models import Throttle

    Throttle.objects.all().delete()
    for _ in range(2):
        selfservice.password_reset_request(email="alice@example.org")
    selfservice.password_reset_request(email=spelling)
    last = AuditEvent.objects.filter(action="account.reset_requested").order_by("-id").first()
    # Either refused outright (a local part that is not ASCII) or counted as alice's third.
    assert last.detail.get("refused") or last.detail["rate_limited"] is True, spelling
    assert last.target == "alice@example.org" or last.detail.get("refused"), last.target


@hsettings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(spelling=spellings_of_alice())
def test_the_form_gives_one_address_or_a_field_error(spelling):
    form = ResetRequestForm(data={"email": spelling})
    if form.is_valid():
        assert form.cleaned_data["email"] == "alice@example.org"
    else:
        assert "email" in form.errors
