"""The claims the test provider vouches for: e-mail, names, and the user's groups as app roles ("roles")."""

from __future__ import annotations

from oauth2_provider.oauth2_validators import OAuth2Validator


class ClaimsValidator(OAuth2Validator):
    # every claim below goes into the ID token and the userinfo answer, whatever the scopes
    oidc_claim_scope = None

    def get_additional_claims(self, request):
        user = request.user
        return {
            "email": user.email,
            "email_verified": True,
            "preferred_username": user.username,
            "given_name": user.first_name,
            "family_name": user.last_name,
            "roles": sorted(user.groups.values_list("name", flat=True)),
        }
