"""The dashboard's account pages: the Users page (admins: signups, invitations and every
directory user) and the profile page (everyone logged in). The signup and password reset pages
live on the signup site (clusterweb/urls_signup.py)."""

from django.urls import path

from clusterweb.accounts.directory import views as directory_views
from clusterweb.accounts.selfservice import views as selfservice_views
from clusterweb.accounts.signup import views as signup_views

app_name = "accounts"
urlpatterns = [
    path("users/", directory_views.users, name="users"),
    path("users/invite/", signup_views.invite, name="invite"),
    path("users/sync/", directory_views.users_sync, name="users_sync"),
    path("users/signups/<int:pk>/", signup_views.signup_detail, name="signup_detail"),
    path("users/signups/<int:pk>/approve/", signup_views.signup_approve, name="signup_approve"),
    path("users/signups/<int:pk>/reject/", signup_views.signup_reject, name="signup_reject"),
    path(
        "users/signups/<int:pk>/resend/", signup_views.invitation_resend, name="invitation_resend"
    ),
    path(
        "users/signups/<int:pk>/revoke/", signup_views.invitation_revoke, name="invitation_revoke"
    ),
    # One confirmation page (GET) and action (POST) per kind of change to an account.
    path(
        "users/people/<str:uid>/disable/",
        directory_views.account_action,
        {"action": "disable"},
        name="user_disable",
    ),
    path(
        "users/people/<str:uid>/enable/",
        directory_views.account_action,
        {"action": "enable"},
        name="user_enable",
    ),
    path(
        "users/people/<str:uid>/promote/",
        directory_views.account_action,
        {"action": "promote"},
        name="user_promote",
    ),
    path(
        "users/people/<str:uid>/demote/",
        directory_views.account_action,
        {"action": "demote"},
        name="user_demote",
    ),
    path(
        "users/people/<str:uid>/reset-link/",
        directory_views.account_action,
        {"action": "reset"},
        name="user_reset_link",
    ),
    path("profile/", selfservice_views.profile, name="profile"),
    path("profile/password/", selfservice_views.password_change, name="profile_password"),
    path("profile/keys/add/", selfservice_views.key_add, name="profile_key_add"),
    path("profile/keys/remove/", selfservice_views.key_remove, name="profile_key_remove"),
]
