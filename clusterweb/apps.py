from django.apps import AppConfig


class ClusterwebConfig(AppConfig):
    name = "clusterweb"
    verbose_name = "Clusterweb"
