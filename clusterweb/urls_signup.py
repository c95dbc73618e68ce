"""The signup site (port 8001, reached through the bastion's tunnel-only `join` account): the
signup pages and their static files, nothing else. No login, admin, dashboard or API."""

from django.contrib.auth.decorators import login_not_required
from django.shortcuts import render
from django.urls import path
from django.views.decorators.http import require_GET


@login_not_required
@require_GET
def signup_home(request):
    return render(request, "signup/placeholder.html")


urlpatterns = [
    path("", signup_home, name="signup_home"),
]

handler403 = "clusterweb.errors_views.forbidden"
handler404 = "clusterweb.errors_views.not_found"
handler500 = "clusterweb.errors_views.server_error"
