from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "clusterweb.accounts"
    label = "accounts"

    def ready(self) -> None:
        from clusterweb.accounts import backends  # noqa: F401 - connects the ldap_error receiver
