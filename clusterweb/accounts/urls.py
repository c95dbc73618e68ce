"""The dashboard's account pages: the Users page (admins: signups, invitations and every
directory user) and the profile page (everyone logged in). The signup and password reset pages
live on the signup site (clusterweb/urls_signup.py)."""

from django.urls import path

from clusterweb.accounts import profile_views, views

app_name = "accounts"
urlpatterns = [
    path("users/", views.users, name="users"),
    path("users/invite/", views.invite, name="invite"),
    path("users/sync/", views.users_sync, name="users_sync"),
    path("users/signups/<int:pk>/", views.signup_detail, name="signup_detail"),
    path("users/signups/<int:pk>/approve/", views.signup_approve, name="signup_approve"),
    path("users/signups/<int:pk>/reject/", views.signup_reject, name="signup_reject"),
    path("users/signups/<int:pk>/resend/", views.invitation_resend, name="invitation_resend"),
    path("users/signups/<int:pk>/revoke/", views.invitation_revoke, name="invitation_revoke"),
    # One confirmation page (GET) and action (POST) per kind of change to an account.
    path(
        "users/people/<str:uid>/disable/",
        views.account_action,
        {"action": "disable"},
        name="user_disable",
    ),
    path(
        "users/people/<str:uid>/enable/",
        views.account_action,
        {"action": "enable"},
        name="user_enable",
    ),
    path(
        "users/people/<str:uid>/promote/",
        views.account_action,
        {"action": "promote"},
        name="user_promote",
    ),
    path(
        "users/people/<str:uid>/demote/",
        views.account_action,
        {"action": "demote"},
        name="user_demote",
    ),
    path(
        "users/people/<str:uid>/reset-link/",
        views.account_action,
        {"action": "reset"},
        name="user_reset_link",
    ),
    path("profile/", profile_views.profile, name="profile"),
    path("profile/password/", profile_views.password_change, name="profile_password"),
    path("profile/keys/add/", profile_views.key_add, name="profile_key_add"),
    path("profile/keys/remove/", profile_views.key_remove, name="profile_key_remove"),
]
