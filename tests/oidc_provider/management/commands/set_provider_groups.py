"""Changes a test provider user's groups between two sign-ins, as an administrator would at the provider."""

from __future__ import annotations

import json

from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Set the groups (app roles, and 'group:<object id>' security groups) of a test provider user."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--groups", required=True, help='JSON list: ["tier2", "group:<object id>", ...]')

    def handle(self, *args, **options):
        user = User.objects.filter(username=options["username"]).first()
        if user is None:
            raise CommandError(f"no provider user named {options['username']!r}")
        user.groups.set([Group.objects.get_or_create(name=name)[0] for name in json.loads(options["groups"])])
