from django.apps import AppConfig


class DevicesConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "devices"
    verbose_name = "Devices and groups"

    def ready(self) -> None:
        """The services ask for a re-evaluation by signal; the tasks, one layer up, answer it."""
        from . import signals, tasks

        signals.reevaluation_requested.connect(
            tasks.queue_reevaluation, dispatch_uid="devices.queue_reevaluation"
        )

    def dashboard_counts(self, user=None) -> dict:
        """Tiles for Home and Dashboard: each an indexed count (managed_by and enrollment status are indexed),
        within ``user``'s role-assignment scope (devices.scope)."""
        from django.urls import reverse

        from .models import Device, ManagedBy
        from .onboarding import SUCCESS
        from .scope import visible_devices

        in_scope = visible_devices(user) if user is not None else Device.objects.all()

        devices = reverse("devices:list")
        issues = in_scope.exclude(enrollment_status__in=["", SUCCESS]).count()
        return {
            "devices_total": {
                "label": "Devices",
                "value": in_scope.count(),
                "url": devices,
                "link_label": "All devices",
            },
            "devices_mde": {
                "label": "Managed by MDE",
                "value": in_scope.filter(managed_by=ManagedBy.MDE).count(),
                "url": f"{devices}?managed_by=mde",
                "link_label": "Devices managed by MDE",
            },
            "devices_enrollment_issues": {
                "label": "MDE enrollment issues",
                "value": issues,
                "url": reverse("devices:enforcement_scope"),
                "link_label": "Enforcement scope",
            },
        }
