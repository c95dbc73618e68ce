from django.urls import path

from billing import views

app_name = "billing"
urlpatterns = [
    path("estimate/", views.estimate, name="estimate"),
    path("prices/", views.prices, name="prices"),
    path("prices/overrides/add", views.override_add, name="override_add"),
    path("prices/overrides/remove", views.override_remove, name="override_remove"),
]
