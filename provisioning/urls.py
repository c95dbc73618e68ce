from django.urls import path

from provisioning import views

app_name = "provisioning"
urlpatterns = [
    path("nodes/", views.nodes, name="nodes"),
    path("pools/", views.pools, name="pools"),
    path("pools/add", views.pool_add, name="pool_add"),
    path("pools/<slug:slug>/edit", views.pool_edit, name="pool_edit"),
]
