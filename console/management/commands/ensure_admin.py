from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError

from console.models import TenantSettings
from console.roles import GLOBAL_ADMIN, sync_roles


class Command(BaseCommand):
    help = "Create the Global Administrator account for local use (once) and print its login."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")

    def handle(self, *args, username: str, **options):
        from django.conf import settings

        if not username.strip():
            raise CommandError("--username must not be empty.")
        sync_roles()
        TenantSettings.load()
        password_file = settings.DATA_DIR / "admin_password"
        User = get_user_model()
        user = User.objects.filter(username=username).first()
        if user is None:
            password = secrets.token_urlsafe(12)
            user = User.objects.create_user(username=username, password=password, is_staff=True)
            password_file.write_text(password)
            password_file.chmod(0o600)
        elif password_file.exists():
            password = password_file.read_text().strip()
        else:
            password = None
        user.groups.add(Group.objects.get(name=GLOBAL_ADMIN))
        self.stdout.write("")
        self.stdout.write(self.style.SUCCESS("  Console:  http://127.0.0.1:8000/"))
        self.stdout.write(self.style.SUCCESS(f"  Username: {username}"))
        if password:
            self.stdout.write(self.style.SUCCESS(f"  Password: {password}"))
        else:
            self.stdout.write(
                f"  Password: (set earlier; reset it with: manage.py changepassword {username})"
            )
        self.stdout.write("")
