"""Set up a colleague without a browser: a user, a role assignment and a one-time invitation link (or password)."""

from __future__ import annotations

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError

from console import audit, rbac
from console.roles import sync_roles


class Command(BaseCommand):
    help = (
        "Create a user with a role (assigned to all devices, or to the devices of --scope-group) and print a "
        "one-time invitation link to set the password (or use --password)."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument(
            "--role", required=True, help="A built-in or custom role, e.g. 'Read Only Operator'."
        )
        parser.add_argument(
            "--scope-group", action="append", default=[], help="A device group name; repeat for several."
        )
        parser.add_argument("--email", default="")
        parser.add_argument(
            "--password", default=None, help="An initial password instead of an invitation link."
        )
        parser.add_argument(
            "--base-url", default="http://127.0.0.1:8000", help="Where the console is reached."
        )

    def handle(self, *args, username, role, scope_group, email, password, base_url, **options):
        sync_roles()
        # devices.Group through the registry: console sits below devices in the layers and does not import it
        groups = apps.get_model("devices", "Group").objects
        scope = []
        for name in scope_group:
            group = groups.filter(name=name).first()
            if group is None:
                raise CommandError(f"No device group named {name!r}.")
            scope.append(group)
        try:
            with audit.acting_as(audit.Actor(name="manage.py create_user")):
                created = rbac.create_user(
                    username=username,
                    email=email,
                    password=password,
                    role=rbac.get_role(role),
                    scope_groups=scope,
                )
        except rbac.RbacError as exc:
            raise CommandError(str(exc)) from None
        where = ", ".join(g.name for g in scope) or "all devices"
        self.stdout.write(self.style.SUCCESS(f"Created {created.user.username} as {role} over {where}."))
        if created.path:
            self.stdout.write("One-time invitation link (shown once):")
            self.stdout.write(base_url.rstrip("/") + created.path)
