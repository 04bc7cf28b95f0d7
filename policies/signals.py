"""policy_changed(sender=Policy, policy=..., kind="created"|"updated"|"assigned"|"deleted", device_ids=set|None)

Sent after a policy is created, its settings or assignments change, or it is deleted (for deletions, the
device ids that had it are passed because the assignments are gone). reports marks the affected devices Pending
at once (a background task) until their next check-in.
"""

from django.dispatch import Signal

policy_changed = Signal()
