"""Creates the test provider's users (their groups become the "roles" claim, their security groups the "groups"
claim) and the console's application."""

from __future__ import annotations

import json

from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand
from oauth2_provider.models import Application


class Command(BaseCommand):
    help = "Create the users and the OpenID Connect client of the test provider."

    def add_arguments(self, parser):
        parser.add_argument("--redirect-uri", required=True)
        parser.add_argument("--client-id", required=True)
        parser.add_argument("--client-secret", required=True)
        parser.add_argument("--password", required=True)
        parser.add_argument(
            "--users",
            required=True,
            help='JSON: {"username": {"email": ..., "groups": [...], "security_groups": [object ids]}, ...}',
        )

    def handle(self, *args, **options):
        for username, spec in json.loads(options["users"]).items():
            user = User.objects.create_user(
                username,
                email=spec["email"],
                password=options["password"],
                first_name=spec.get("first_name", ""),
            )
            names = [*spec.get("groups", []), *(f"group:{oid}" for oid in spec.get("security_groups", []))]
            for name in names:
                user.groups.add(Group.objects.get_or_create(name=name)[0])
        Application.objects.create(
            name="MDE console",
            client_id=options["client_id"],
            client_secret=options["client_secret"],
            client_type=Application.CLIENT_CONFIDENTIAL,
            authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
            redirect_uris=options["redirect_uri"],
            algorithm=Application.RS256_ALGORITHM,
            skip_authorization=True,
        )
