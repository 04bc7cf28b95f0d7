"""Set up a Graph API client without a browser: a token bound to a role, printed once."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils.text import slugify

from console import audit
from console.roles import sync_roles
from console.tokens import create_token


class Command(BaseCommand):
    help = "Create a Graph API token for a role and print it once (only its hash is stored)."

    def add_arguments(self, parser):
        parser.add_argument("--role", required=True)
        parser.add_argument("--name", default="Automation")
        parser.add_argument(
            "--owner",
            default=None,
            help="The user the token acts for (default: a service account for --name).",
        )
        parser.add_argument("--days", type=int, default=90, help="Expiry in days, 1 to 730; 0 never expires.")

    def handle(self, *args, role, name, owner, days, **options):
        sync_roles()
        User = get_user_model()
        with audit.acting_as(audit.Actor(name="manage.py create_api_token")):
            if owner:
                user = User.objects.filter(username=owner).first()
                if user is None:
                    raise CommandError(f"No user named {owner!r}.")
            else:
                user = self._service_account(name)
            try:
                token, secret = create_token(name=name, owner=user, role=role, days=days or None)
            except ValueError as exc:
                raise CommandError(str(exc)) from None
        self.stdout.write(self.style.SUCCESS(f"Created token {token.name} ({token.prefix}) for role {role}."))
        self.stdout.write("Token (shown once):")
        self.stdout.write(secret)

    @staticmethod
    def _service_account(name: str):
        """An account with no password that only owns tokens (it cannot sign in to the console)."""
        User = get_user_model()
        username = f"svc-{slugify(name) or 'api'}"[:150]
        user, created = User.objects.get_or_create(username=username)
        if created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
            audit.record(
                "user.create", user, object_type="User", after={"username": username, "service": True}
            )
        return user
