"""Every URL pattern × every persona × GET and POST, against one table of expected outcomes.

A URL pattern missing from the table fails the test, so no page is added without deciding who
may use it. Nothing may answer 500.
"""

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from tests.fixtures.personas import logged_in_client

pytestmark = pytest.mark.django_db

LOGIN = "login"  # a redirect to the login page
PERSONAS = ("anonymous", "carol", "bob", "alice")

# carol is in no group: a session she might hold is ended at her first request.
# An empty POST to the login form is a form with errors, shown again (200).
# fmt: off
TABLE = [
    # url name       method   anonymous carol  bob    alice
    ("home",         "GET",   LOGIN,    LOGIN, 200,   200),
    ("home",         "POST",  LOGIN,    LOGIN, 405,   405),
    ("healthz",      "GET",   200,      200,   200,   200),
    ("healthz",      "POST",  405,      405,   405,   405),
    ("healthz_live", "GET",   200,      200,   200,   200),
    ("healthz_live", "POST",  405,      405,   405,   405),
    ("healthz_ready", "GET",  200,      200,   200,   200),
    ("healthz_ready", "POST", 405,      405,   405,   405),
    ("login",        "GET",   200,      200,   200,   200),
    ("login",        "POST",  200,      200,   200,   200),
    ("logout",       "GET",   200,      200,   200,   200),
    ("logout",       "POST",  LOGIN,    LOGIN, LOGIN, LOGIN),
    ("audit:list",   "GET",   LOGIN,    LOGIN, 403,   200),
    ("audit:list",   "POST",  LOGIN,    LOGIN, 405,   405),
    # Users page: signups and invitations. KWARGS name a signup that does not exist: 404 for
    # admins (tests/accounts/ cover real ones); the method and the role are checked first.
    ("accounts:users",             "GET",  LOGIN, LOGIN, 403, 200),
    ("accounts:users",             "POST", LOGIN, LOGIN, 405, 405),
    ("accounts:invite",            "GET",  LOGIN, LOGIN, 405, 405),
    ("accounts:invite",            "POST", LOGIN, LOGIN, 403, 200),
    ("accounts:signup_detail",     "GET",  LOGIN, LOGIN, 403, 404),
    ("accounts:signup_detail",     "POST", LOGIN, LOGIN, 405, 405),
    ("accounts:signup_approve",    "GET",  LOGIN, LOGIN, 405, 405),
    ("accounts:signup_approve",    "POST", LOGIN, LOGIN, 403, 404),
    ("accounts:signup_reject",     "GET",  LOGIN, LOGIN, 405, 405),
    ("accounts:signup_reject",     "POST", LOGIN, LOGIN, 403, 404),
    ("accounts:invitation_resend", "GET",  LOGIN, LOGIN, 405, 405),
    ("accounts:invitation_resend", "POST", LOGIN, LOGIN, 403, 404),
    ("accounts:invitation_revoke", "GET",  LOGIN, LOGIN, 405, 405),
    ("accounts:invitation_revoke", "POST", LOGIN, LOGIN, 403, 404),
    # Directory accounts: "Read now", and each action's confirmation (GET) and doing (POST).
    # KWARGS name a user the directory does not have: 404 for admins.
    ("accounts:users_sync",        "GET",  LOGIN, LOGIN, 405, 405),
    ("accounts:users_sync",        "POST", LOGIN, LOGIN, 403, 302),
    ("accounts:user_disable",      "GET",  LOGIN, LOGIN, 403, 404),
    ("accounts:user_disable",      "POST", LOGIN, LOGIN, 403, 404),
    ("accounts:user_enable",       "GET",  LOGIN, LOGIN, 403, 404),
    ("accounts:user_enable",       "POST", LOGIN, LOGIN, 403, 404),
    ("accounts:user_promote",      "GET",  LOGIN, LOGIN, 403, 404),
    ("accounts:user_promote",      "POST", LOGIN, LOGIN, 403, 404),
    ("accounts:user_demote",       "GET",  LOGIN, LOGIN, 403, 404),
    ("accounts:user_demote",       "POST", LOGIN, LOGIN, 403, 404),
    ("accounts:user_reset_link",   "GET",  LOGIN, LOGIN, 403, 404),
    ("accounts:user_reset_link",   "POST", LOGIN, LOGIN, 403, 404),
    # Profile: everyone logged in. Empty POSTs are forms with errors, shown again (200).
    ("accounts:profile",            "GET",  LOGIN, LOGIN, 200, 200),
    ("accounts:profile",            "POST", LOGIN, LOGIN, 405, 405),
    ("accounts:profile_password",   "GET",  LOGIN, LOGIN, 405, 405),
    ("accounts:profile_password",   "POST", LOGIN, LOGIN, 200, 200),
    ("accounts:profile_key_add",    "GET",  LOGIN, LOGIN, 405, 405),
    ("accounts:profile_key_add",    "POST", LOGIN, LOGIN, 200, 200),
    ("accounts:profile_key_remove", "GET",  LOGIN, LOGIN, 405, 405),
    ("accounts:profile_key_remove", "POST", LOGIN, LOGIN, 200, 200),
    ("billing:estimate",        "GET",  LOGIN, LOGIN, 200, 200),
    ("billing:estimate",        "POST", LOGIN, LOGIN, 200, 200),
    ("billing:prices",          "GET",  LOGIN, LOGIN, 403, 200),
    ("billing:prices",          "POST", LOGIN, LOGIN, 405, 405),
    ("billing:override_add",    "GET",  LOGIN, LOGIN, 405, 405),
    ("billing:override_add",    "POST", LOGIN, LOGIN, 403, 200),
    ("billing:override_remove", "GET",  LOGIN, LOGIN, 405, 405),
    ("billing:override_remove", "POST", LOGIN, LOGIN, 403, 302),
    # Budget: admins only (collaborators see the budget's state on the dashboard). Empty POSTs
    # to the settings and freeze forms are forms with errors (200). The action link's page
    # (KWARGS: the freeze) asks to confirm on GET and acts only on an admin's POST; an empty
    # POST lacks the freeze's reason (200, nothing frozen).
    ("billing:budgets",         "GET",  LOGIN, LOGIN, 403, 200),
    ("billing:budgets",         "POST", LOGIN, LOGIN, 405, 405),
    ("billing:budget_set",      "GET",  LOGIN, LOGIN, 405, 405),
    ("billing:budget_set",      "POST", LOGIN, LOGIN, 403, 200),
    ("billing:budget_freeze",   "GET",  LOGIN, LOGIN, 405, 405),
    ("billing:budget_freeze",   "POST", LOGIN, LOGIN, 403, 200),
    ("billing:budget_unfreeze", "GET",  LOGIN, LOGIN, 405, 405),
    ("billing:budget_unfreeze", "POST", LOGIN, LOGIN, 403, 302),
    ("billing:budget_action",   "GET",  LOGIN, LOGIN, 403, 200),
    ("billing:budget_action",   "POST", LOGIN, LOGIN, 403, 200),
    # Nodes: collaborators see theirs and the always-on ones; Pools: admins only. An empty POST
    # to the add form is a form with errors (200); KWARGS name a pool that does not exist.
    ("provisioning:nodes",     "GET",  LOGIN, LOGIN, 200, 200),
    ("provisioning:nodes",     "POST", LOGIN, LOGIN, 405, 405),
    ("provisioning:pools",     "GET",  LOGIN, LOGIN, 403, 200),
    ("provisioning:pools",     "POST", LOGIN, LOGIN, 405, 405),
    ("provisioning:pool_add",  "GET",  LOGIN, LOGIN, 403, 200),
    ("provisioning:pool_add",  "POST", LOGIN, LOGIN, 403, 200),
    ("provisioning:pool_edit", "GET",  LOGIN, LOGIN, 403, 404),
    ("provisioning:pool_edit", "POST", LOGIN, LOGIN, 403, 404),
    # Launches: collaborators and admins ask and see their own; admins see all, decide and set
    # the policy. No pool exists here: the Spark form says so (200), a POST to it too. KWARGS
    # name a request that does not exist (404, after the method and the role). An empty POST
    # to the policy form is a form with errors (200).
    ("launches:mine",      "GET",  LOGIN, LOGIN, 200, 200),
    ("launches:mine",      "POST", LOGIN, LOGIN, 405, 405),
    ("launches:all",       "GET",  LOGIN, LOGIN, 403, 200),
    ("launches:all",       "POST", LOGIN, LOGIN, 405, 405),
    ("launches:spark",     "GET",  LOGIN, LOGIN, 200, 200),
    ("launches:spark",     "POST", LOGIN, LOGIN, 200, 200),
    ("launches:approvals", "GET",  LOGIN, LOGIN, 403, 200),
    ("launches:approvals", "POST", LOGIN, LOGIN, 405, 405),
    ("launches:policy",    "GET",  LOGIN, LOGIN, 403, 200),
    ("launches:policy",    "POST", LOGIN, LOGIN, 403, 200),
    ("launches:detail",    "GET",  LOGIN, LOGIN, 404, 404),
    ("launches:detail",    "POST", LOGIN, LOGIN, 405, 405),
    ("launches:cancel",    "GET",  LOGIN, LOGIN, 405, 405),
    ("launches:cancel",    "POST", LOGIN, LOGIN, 404, 404),
    ("launches:stop",      "GET",  LOGIN, LOGIN, 405, 405),
    ("launches:stop",      "POST", LOGIN, LOGIN, 404, 404),
    ("launches:approve",   "GET",  LOGIN, LOGIN, 405, 405),
    ("launches:approve",   "POST", LOGIN, LOGIN, 403, 404),
    ("launches:reject",    "GET",  LOGIN, LOGIN, 405, 405),
    ("launches:reject",    "POST", LOGIN, LOGIN, 403, 404),
]
# fmt: on
# Arguments for URL patterns that take them: {url name: kwargs for reverse()}.
KWARGS: dict[str, dict] = {
    "accounts:signup_detail": {"pk": 999999},
    "accounts:signup_approve": {"pk": 999999},
    "accounts:signup_reject": {"pk": 999999},
    "accounts:invitation_resend": {"pk": 999999},
    "accounts:invitation_revoke": {"pk": 999999},
    "accounts:user_disable": {"uid": "no-such-user"},
    "accounts:user_enable": {"uid": "no-such-user"},
    "accounts:user_promote": {"uid": "no-such-user"},
    "accounts:user_demote": {"uid": "no-such-user"},
    "accounts:user_reset_link": {"uid": "no-such-user"},
    "provisioning:pool_edit": {"slug": "no-such-pool"},
    "billing:budget_action": {"action": "freeze"},
    "launches:detail": {"pk": 999999},
    "launches:cancel": {"pk": 999999},
    "launches:stop": {"pk": 999999},
    "launches:approve": {"pk": 999999},
    "launches:reject": {"pk": 999999},
}
MATRIX = {name: {} for name, *_ in TABLE}
for _name, _method, *_outcomes in TABLE:
    MATRIX[_name].update({(_method, p): o for p, o in zip(PERSONAS, _outcomes, strict=True)})


def url_names(resolver: URLResolver | None = None, namespace: str = "") -> list[str]:
    names = []
    for entry in (resolver or get_resolver()).url_patterns:
        if isinstance(entry, URLResolver):
            inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            names += url_names(entry, inner)
        elif isinstance(entry, URLPattern):
            assert entry.name, f"URL pattern {entry.pattern} has no name, so no row in the matrix"
            names.append(f"{namespace}{entry.name}")
    return names


def test_every_url_pattern_has_a_row_in_the_matrix():
    missing = sorted(set(url_names()) - set(MATRIX))
    assert not missing, f"URL patterns missing from the matrix: {missing}"
    stale = sorted(set(MATRIX) - set(url_names()))
    assert not stale, f"matrix rows without a URL pattern: {stale}"


def client_for(persona: str) -> Client:
    if persona == "anonymous":
        return Client(raise_request_exception=False)
    from sandbox.directory import BY_UID

    client = logged_in_client(BY_UID[persona])
    client.raise_request_exception = False
    return client


@pytest.mark.parametrize("name", sorted(MATRIX))
def test_each_url_answers_each_persona_as_the_matrix_says(name, directory_server, redis):
    expected = MATRIX[name]
    assert len(expected) == 2 * len(PERSONAS), f"{name} needs a GET and a POST row"
    url = reverse(name, kwargs=KWARGS.get(name, {}))
    for persona in PERSONAS:
        for method in ("GET", "POST"):
            client = client_for(persona)
            response = client.get(url) if method == "GET" else client.post(url, {})
            want = expected[(method, persona)]
            got = response.status_code
            assert got != 500, f"{method} {url} as {persona} answered 500"
            if want == LOGIN:
                assert got == 302 and response["Location"].startswith(reverse("login")), (
                    f"{method} {url} as {persona}: expected a login redirect, got {got}"
                )
            else:
                assert got == want, f"{method} {url} as {persona}: expected {want}, got {got}"
