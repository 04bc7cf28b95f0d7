from django.apps import AppConfig


class PoliciesConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "policies"
    verbose_name = "Endpoint security policies"

    def dashboard_counts(self) -> dict:
        """Tiles for Home and Dashboard (two indexed counts)."""
        from django.urls import reverse

        from .models import Policy

        total = Policy.objects.count()
        assigned = Policy.objects.filter(assignments__intent="include").distinct().count()
        return {
            "policies": {
                "label": "Endpoint security policies",
                "value": total,
                "suffix": f"{assigned} assigned",
                "url": reverse("policies:overview"),
                "link_label": "Endpoint security",
            }
        }
