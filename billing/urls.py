from django.urls import path

from billing import views

app_name = "billing"
urlpatterns = [
    path("estimate/", views.estimate, name="estimate"),
    path("prices/", views.prices, name="prices"),
    path("prices/overrides/add", views.override_add, name="override_add"),
    path("prices/overrides/remove", views.override_remove, name="override_remove"),
]
urlpatterns += [
    path("budgets/", views.budgets, name="budgets"),
    path("budgets/set", views.budget_set, name="budget_set"),
    path("budgets/freeze", views.budget_freeze, name="budget_freeze"),
    path("budgets/unfreeze", views.budget_unfreeze, name="budget_unfreeze"),
    path("budgets/actions/<slug:action>/", views.budget_action, name="budget_action"),
]
