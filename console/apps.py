from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "console"
    verbose_name = "Console"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from . import heartbeats, roles

        heartbeats.connect()
        post_migrate.connect(roles.sync_roles_after_migrate, dispatch_uid="console.sync_roles")
