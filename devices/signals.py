"""Signals other apps listen to, so that devices does not import them.

- management_changed(sender=Device, device=..., managed=bool): the device started or stopped being managed by
  MDE security management (onboarding succeeded, or it left scope / lost management). reports clears or
  initialises the device's status rows; the device channel revokes or keeps the credential.
- membership_changed(sender=Group, group=..., device_ids=set[int]): group membership changed for these devices;
  their desired state may differ now, so they are marked Pending until the next check-in.
- reevaluation_requested(sender=Job, job=...): a person asked to re-evaluate every device (a tenant switch);
  devices.tasks queues the job's task. devices.services sends it because the tasks sit above the services.
"""

from django.dispatch import Signal

management_changed = Signal()
membership_changed = Signal()
reevaluation_requested = Signal()
