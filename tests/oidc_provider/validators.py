"""The claims the test provider vouches for: e-mail, names, the user's groups as app roles ("roles") and, as Entra
sends security groups, the groups named "group:<object id>" as the "groups" claim (the object ids)."""

from __future__ import annotations

from oauth2_provider.oauth2_validators import OAuth2Validator

GROUP_PREFIX = "group:"


class ClaimsValidator(OAuth2Validator):
    # every claim below goes into the ID token and the userinfo answer, whatever the scopes
    oidc_claim_scope = None

    def get_additional_claims(self, request):
        user = request.user
        names = sorted(user.groups.values_list("name", flat=True))
        return {
            "email": user.email,
            "email_verified": True,
            "preferred_username": user.username,
            "given_name": user.first_name,
            "family_name": user.last_name,
            "roles": [name for name in names if not name.startswith(GROUP_PREFIX)],
            "groups": [name.removeprefix(GROUP_PREFIX) for name in names if name.startswith(GROUP_PREFIX)],
        }
