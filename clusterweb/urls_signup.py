"""The signup site (port 8001, reached through the bastion's tunnel-only `join` account): the
signup and password reset pages and their static files, nothing else. No login, admin, dashboard
or API."""

from django.urls import path

from clusterweb.accounts.selfservice import site_views as reset_views
from clusterweb.accounts.signup import site_views as signup_views

urlpatterns = [
    path("", signup_views.signup_home, name="signup_home"),
    path("invitation/", signup_views.signup_invitation, name="signup_invitation"),
    path("join/", signup_views.signup_form, name="signup_form"),
    path("join/submitted/", signup_views.signup_submitted, name="signup_submitted"),
    path("reset/", reset_views.password_reset, name="password_reset"),
    path("reset/password/", reset_views.password_reset_form, name="password_reset_form"),
    path("reset/done/", reset_views.password_reset_done, name="password_reset_done"),
    path("reset/request/", reset_views.password_reset_request, name="password_reset_request"),
]

handler403 = "clusterweb.errors_views.forbidden"
handler404 = "clusterweb.errors_views.not_found"
handler500 = "clusterweb.errors_views.server_error"
