from django.apps import AppConfig


class HealthConfig(AppConfig):
    name = "clusterweb.health"
    label = "health"
