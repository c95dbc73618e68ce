"""Issue 13, finding 12: no password reaches an error report. Every view that takes a password
is marked with ``sensitive_post_parameters`` and every function of ours with a password among its
parameters with ``sensitive_variables``. The tests find these by walking the URL configurations
and the package, so a new password view or service without the marks fails here."""

import importlib
import inspect
import pkgutil
import re
import sys

import pytest
from django import forms
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.views.debug import ExceptionReporter, SafeExceptionReporterFilter

import clusterweb

URLCONFS = ("clusterweb.urls", "clusterweb.urls_signup")
# Parameter names that carry a password (ldap.password_change's old and new).
PASSWORD_PARAMETERS = ("password", "passwd")
EXACT_PASSWORD_PARAMETERS = {"old", "new"}
# A view reading a password straight from the request, without a form.
POST_PASSWORD = re.compile(r"request\.POST(?:\.get\(|\[)\s*[\x27\"]\w*passw")


def chain(func):
    """``func`` and everything it wraps (functools.wraps' ``__wrapped__``)."""
    seen = []
    while func is not None and func not in seen:
        seen.append(func)
        func = getattr(func, "__wrapped__", None)
    return seen


def code_names(func) -> list[str]:
    # functools.wraps copies __name__; the code object keeps the wrapper's own name.
    return [f.__code__.co_name for f in chain(func) if hasattr(f, "__code__")]


def hidden_post_parameters(func) -> tuple[str, ...] | None:
    """The parameters a ``sensitive_post_parameters`` wrapper in ``func``'s chain hides (() for
    all of them), or None without one."""
    for f in chain(func):
        code = getattr(f, "__code__", None)
        if code is not None and code.co_name == "sensitive_post_parameters_wrapper":
            cells = dict(
                zip(code.co_freevars, (c.cell_contents for c in f.__closure__), strict=True)
            )
            return tuple(cells["parameters"])
    return None


def callbacks(resolver: URLResolver, prefix: str = ""):
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            yield from callbacks(entry, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern), entry.callback


def our_modules():
    for info in pkgutil.walk_packages(clusterweb.__path__, "clusterweb."):
        if ".migrations" in info.name or info.name.endswith(("wsgi", "gunicorn_conf", "celery")):
            continue
        yield importlib.import_module(info.name)


def password_forms() -> set[type]:
    found = set()
    for module in our_modules():
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if (
                issubclass(cls, forms.BaseForm)
                and cls.__module__ == module.__name__
                and any(
                    isinstance(field.widget, forms.PasswordInput)
                    for field in cls.base_fields.values()
                )
            ):
                found.add(cls)
    return found


def password_views():
    """(route, callback, password fields) of every view whose code uses a form with a password
    field (or reads one from request.POST)."""
    fields_of = {
        cls.__name__: {
            name
            for name, field in cls.base_fields.items()
            if isinstance(field.widget, forms.PasswordInput)
        }
        for cls in password_forms()
    }
    views = []
    for urlconf in URLCONFS:
        for route, callback in callbacks(get_resolver(urlconf)):
            innermost = chain(callback)[-1]
            try:
                source = inspect.getsource(innermost)
            except (OSError, TypeError):
                continue
            used = [name for name in fields_of if re.search(rf"\b{name}\(", source)]
            if used or POST_PASSWORD.search(source):
                fields = set().union(*(fields_of[name] for name in used))
                views.append((f"{urlconf}:{route}", callback, tuple(sorted(fields))))
    return views


def test_the_walk_finds_the_known_password_views():
    found = {chain(callback)[-1].__name__ for _, callback, _ in password_views()}
    assert {"login_view", "signup_form", "password_change", "password_reset_form"} <= found, found


@pytest.mark.parametrize("route, callback, fields", password_views(), ids=lambda v: str(v)[:60])
def test_every_password_view_hides_its_post_parameters(route, callback, fields):
    hidden = hidden_post_parameters(callback)
    assert hidden is not None, f"{route}: no sensitive_post_parameters"
    if hidden:  # () hides every parameter
        assert set(fields) <= set(hidden), f"{route} shows {set(fields) - set(hidden)}"


def password_functions():
    out = []
    for module in our_modules():
        candidates = list(inspect.getmembers(module, inspect.isfunction))
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__:
                candidates += [
                    (f"{cls.__name__}.{n}", f)
                    for n, f in vars(cls).items()
                    if inspect.isfunction(f)
                ]
        for name, func in candidates:
            innermost = chain(func)[-1]
            if innermost.__module__ != module.__name__:
                continue
            parameters = inspect.signature(innermost).parameters
            if any(
                (any(word in p.lower() for word in PASSWORD_PARAMETERS) and not p.endswith("_form"))
                or (p in EXACT_PASSWORD_PARAMETERS and module.__name__.endswith("ldap"))
                for p in parameters
            ):
                out.append((f"{module.__name__}.{name}", func))
    return out


def test_the_walk_finds_the_known_password_functions():
    found = {name for name, _ in password_functions()}
    for name in (
        "clusterweb.accounts.login.services.login_attempt",
        "clusterweb.accounts.selfservice.services.password_change",
        "clusterweb.accounts.selfservice.services.password_reset_complete",
        "clusterweb.integrations.ldap.password_change",
        "clusterweb.integrations.ldap.password_set",
        "clusterweb.accounts.backends.ClusterLDAPBackend.authenticate",
    ):
        assert name in found, name


@pytest.mark.parametrize("name, func", password_functions(), ids=lambda v: str(v)[:70])
def test_every_function_taking_a_password_hides_its_variables(name, func):
    # The outermost decorator: Django looks for the wrapper's frame right above the function's.
    names = code_names(func)
    assert names[0] == "sensitive_variables_wrapper", f"{name}: {names}"


@pytest.mark.django_db
def test_an_error_report_of_a_login_shows_no_password(client, directory_server):
    response = client.post(reverse("login"), {"username": "bob", "password": "hunter2-secret"})
    request = response.wsgi_request
    cleaned = SafeExceptionReporterFilter().get_post_parameters(request)
    assert cleaned["password"] != "hunter2-secret"
    assert cleaned["username"] == "bob"
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        report = ExceptionReporter(request, *sys.exc_info()).get_traceback_text()
    assert "hunter2-secret" not in report
