import functools

from django.apps import AppConfig

from devices.agent import TAMPER_PROTECTED
from devices.signals import management_changed, membership_changed
from policies.signals import policy_changed

# Saved or deleted, each bumps the policy generation token. Named, not imported: apps.py loads before the models.
GENERATION_MODELS = (
    "policies.Policy",
    "policies.PolicyAssignment",
    "policies.AssignmentFilter",
    "console.TenantSettings",
)


class ReportsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "reports"
    verbose_name = "Reports"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save, pre_delete

        from . import drift, ingest, pending, tasks  # noqa: F401 - tasks: registered in every process, queued by name

        device, policy = self.apps.get_model("devices.Device"), self.apps.get_model("policies.Policy")
        policy_changed.connect(pending.on_policy_changed, dispatch_uid="reports.pending.policy_changed")
        membership_changed.connect(pending.on_membership_changed, dispatch_uid="reports.pending.membership")
        management_changed.connect(pending.on_management_changed, dispatch_uid="reports.pending.management")
        pre_delete.connect(
            pending.on_device_deleted, sender=device, dispatch_uid="reports.pending.device_deleted"
        )
        pre_delete.connect(
            pending.on_policy_deleting, sender=policy, dispatch_uid="reports.pending.policy_deleting"
        )
        post_save.connect(ingest.on_device_saved, sender=device, dispatch_uid="reports.ingest.device_saved")
        drift.drift_recorded.connect(
            functools.partial(_alert_soc, tamper_protected=frozenset(TAMPER_PROTECTED)),
            weak=False,
            dispatch_uid="reports.drift.alert_soc",
        )
        # Anything a check-in resolves against: a new generation token, so cached policy sets are reloaded.
        for model in map(self.apps.get_model, GENERATION_MODELS):
            for signal in (post_save, post_delete):
                signal.connect(
                    pending.bump_generation,
                    sender=model,
                    dispatch_uid=f"reports.generation.{signal is post_save}.{model.__name__}",
                )


def _alert_soc(sender, events, tamper_protected, **kwargs) -> None:
    """After a check-in committed: a webhook problem is logged, never a failed check-in."""
    import logging

    from . import drift

    try:
        drift.alert_soc(events, tamper_protected=tamper_protected)
    except Exception:  # the check-in is committed; the SOC alert is best effort and logged
        logging.getLogger("reports.drift").exception(
            "Could not queue the drift webhook for %d events", len(events)
        )
