from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "console"
    verbose_name = "Console"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from . import heartbeats, lookups, roles

        lookups.register()
        heartbeats.connect()
        post_migrate.connect(roles.sync_roles_after_migrate, dispatch_uid="console.sync_roles")

        from django.contrib.auth.signals import user_login_failed

        from . import security

        # connected after django-axes' own receiver (axes comes first in INSTALLED_APPS), which marks the request
        # as locked out when this failure locks it
        user_login_failed.connect(security.audit_failed_login, dispatch_uid="console.audit_failed_login")

        from django.contrib.auth.signals import user_logged_in

        from . import preferences

        user_logged_in.connect(preferences.remember_on_login, dispatch_uid="console.preferences_on_login")
