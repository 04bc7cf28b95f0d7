"""A local change on a simulated Linux or macOS device, as ``mdatp config <property> --value <value>`` makes it.

    python manage.py mdatp_config lnx-web-01 cloud-diagnostic --value required

The value is kept on the device's agent state (``local``); the device page's managed configuration view shows
what is effective with the managed values (devices.mdatp). A property the managed profile sets can't be changed
locally, as on the device. The device is named by its display name (or its Intune device id).
"""

from __future__ import annotations

import uuid

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from devices import agent, mdatp
from devices.models import Device


class Command(BaseCommand):
    help = "Change a local Defender setting on a simulated Linux or macOS device (mdatp config)."

    def add_arguments(self, parser):
        parser.add_argument("device", help="the device's name (or its device id)")
        parser.add_argument("property", help="e.g. real-time-protection, cloud, cloud-diagnostic")
        parser.add_argument("--value", required=True, help="e.g. enabled, disabled, required")

    def handle(self, *args, **options):
        name = options["device"].strip()
        with transaction.atomic():
            found = list(Device.objects.select_for_update().filter(display_name=name)[:2])
            if not found:
                try:
                    found = list(Device.objects.select_for_update().filter(device_id=uuid.UUID(name))[:2])
                except ValueError:
                    found = []
            if not found:
                raise CommandError(f"No device is named “{name}”.")
            if len(found) > 1:
                raise CommandError(f"Two devices are named “{name}”: name it by its device id instead.")
            device = found[0]
            if device.os not in mdatp.PLATFORMS:
                raise CommandError(
                    f"{device.display_name} runs {device.get_os_display()}: mdatp is on Linux and macOS."
                )
            state = agent.AgentState.from_dict(device.agent_state or {})
            managed = {key: state.applied[key] for key in state.managed if key in state.applied}
            try:
                local = mdatp.mdatp_config(
                    device.os, state.local, managed, options["property"], options["value"]
                )
            except mdatp.MdatpConfigError as exc:
                raise CommandError(str(exc)) from None
            stored = dict(device.agent_state or {})
            stored.setdefault("preferences", {})
            stored["local"] = local
            Device.objects.filter(pk=device.pk).update(agent_state=stored)
        self.stdout.write(mdatp.CONFIG_UPDATED)
