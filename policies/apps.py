from django.apps import AppConfig


class PoliciesConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "policies"
    verbose_name = "Endpoint security policies"

    def dashboard_counts(self, user=None) -> dict:
        """Tiles for Home and Dashboard (two indexed counts), within ``user``'s scope tags."""
        from django.urls import reverse

        from console import scopetags  # reason: apps.py is loaded before the app registry is ready

        from .models import Policy

        in_scope = scopetags.visible(Policy.objects.all(), user)
        total = in_scope.count()
        assigned = in_scope.filter(assignments__intent="include").distinct().count()
        return {
            "policies": {
                "label": "Endpoint security policies",
                "value": total,
                "suffix": f"{assigned} assigned",
                "url": reverse("policies:overview"),
                "link_label": "Endpoint security",
            }
        }
