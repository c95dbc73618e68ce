from django.conf import settings
from django.urls import include, path

from clusterweb import views
from clusterweb.accounts.login import views as login_views

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("healthz/live", views.healthz_live, name="healthz_live"),
    path("healthz/ready", views.healthz_ready, name="healthz_ready"),
    path("login/", login_views.login_view, name="login"),
    path("logout/", login_views.logout_view, name="logout"),
    path("audit/", include("clusterweb.audit.urls")),
    path("billing/", include("billing.urls")),
    path("", include("clusterweb.accounts.urls")),  # users/..., profile/...
    path("", include("provisioning.urls")),
    path("launches/", include("provisioning.launches.urls")),
]

if settings.SANDBOX:
    # Sandbox-only pages (Mail); without CLUSTERWEB_SANDBOX=1 these URLs do not exist (404).
    urlpatterns.append(path("sandbox/", include("sandbox.urls")))

handler403 = "clusterweb.errors_views.forbidden"
handler404 = "clusterweb.errors_views.not_found"
handler500 = "clusterweb.errors_views.server_error"
