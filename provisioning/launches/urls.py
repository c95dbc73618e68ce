"""The launch pages, under /launches/ (the emails link to /launches/<id>/ and
/launches/approvals/: ``services.request_url`` and ``services.approvals_url``)."""

from django.urls import path

from provisioning.launches import execution_views, views

app_name = "launches"
urlpatterns = [
    path("", views.mine, name="mine"),
    path("all/", views.everyone, name="all"),
    path("spark/", views.spark, name="spark"),
    path("approvals/", views.approvals, name="approvals"),
    path("policy/", views.policy, name="policy"),
    path("<int:pk>/", views.detail, name="detail"),
    path("<int:pk>/cancel/", views.cancel, name="cancel"),
    path("<int:pk>/stop/", execution_views.stop, name="stop"),
    path("<int:pk>/approve/", views.approve, name="approve"),
    path("<int:pk>/reject/", views.reject, name="reject"),
]
