from __future__ import annotations

import importlib
import time

from django.core.management.base import BaseCommand, CommandError

# Each app owns its demo data in `<app>/demo.py` with `seed(stdout, **options)`; they run in this order.
SEEDERS = ["console.demo", "devices.demo", "policies.demo", "reports.demo"]


class Command(BaseCommand):
    help = "Load a realistic demo tenant: devices of every kind, groups, policies, and their status."

    def add_arguments(self, parser):
        parser.add_argument("--devices", type=int, default=300, help="how many devices (default 300)")
        parser.add_argument(
            "--policies",
            type=int,
            default=18,
            help="how many policies (default 18: 12 Windows, 6 macOS and Linux)",
        )
        parser.add_argument("--seed", type=int, default=42, help="random seed, for a repeatable fleet")
        parser.add_argument(
            "--if-empty", action="store_true", help="do nothing when demo data already exists"
        )

    def handle(self, *args, **options):
        if options["devices"] < 0 or options["devices"] > 2_000_000:
            raise CommandError("--devices must be between 0 and 2,000,000.")
        if options["policies"] < 0 or options["policies"] > 500:
            raise CommandError("--policies must be between 0 and 500.")
        from console.models import TenantSettings

        if options["if_empty"] and TenantSettings.objects.filter(pk=1, tenant_name__isnull=False).exists():
            from django.apps import apps

            if apps.get_model("devices", "Device").objects.exists():
                self.stdout.write("Demo data already present; leaving it as it is.")
                return
        for name in SEEDERS:
            try:
                module = importlib.import_module(name)
            except ModuleNotFoundError:
                continue
            started = time.monotonic()
            # call_command(stdout=…) puts the stream in options too: each seeder writes to self.stdout only
            module.seed(self.stdout, **{k: v for k, v in options.items() if k not in ("stdout", "stderr")})
            self.stdout.write(f"  {name.split('.')[0]}: done in {time.monotonic() - started:.1f}s")
