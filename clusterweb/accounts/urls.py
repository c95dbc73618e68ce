"""The dashboard's Users page (admins only): signups and invitations. The signup pages
themselves live on the signup site (clusterweb/urls_signup.py)."""

from django.urls import path

from clusterweb.accounts import views

app_name = "accounts"
urlpatterns = [
    path("", views.users, name="users"),
    path("invite/", views.invite, name="invite"),
    path("signups/<int:pk>/", views.signup_detail, name="signup_detail"),
    path("signups/<int:pk>/approve/", views.signup_approve, name="signup_approve"),
    path("signups/<int:pk>/reject/", views.signup_reject, name="signup_reject"),
    path("signups/<int:pk>/resend/", views.invitation_resend, name="invitation_resend"),
    path("signups/<int:pk>/revoke/", views.invitation_revoke, name="invitation_revoke"),
]
