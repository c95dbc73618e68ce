from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "clusterweb.audit"
    label = "audit"
