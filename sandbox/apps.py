from django.apps import AppConfig


class SandboxConfig(AppConfig):
    """Installed only with CLUSTERWEB_SANDBOX=1: the sandbox's seed command and its Mail page."""

    name = "sandbox"
    verbose_name = "Sandbox"
