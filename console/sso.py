"""Single sign-on with OpenID Connect: Entra ID, Okta, Keycloak or any provider that publishes a discovery document.

Why mozilla-django-oidc rather than django-allauth: the console needs one thing - the authorization code flow
(with PKCE) against one provider, ending in a Django user with a role - and mozilla-django-oidc is exactly that: an
authentication backend beside django-axes' and Django's own, and two views. django-allauth would bring its own
account app, middleware, templates and a dozen routed pages (sign-up, e-mail management, social connections) that
the console does not want and would each need an access decision, and it keeps its provider settings in the
database while this console is configured by environment variables. What mozilla-django-oidc leaves to us is
small and lives here: the endpoints come from the provider's discovery document (OIDC_ISSUER), the ID token's
issuer and audience are checked too, users are matched by subject (then e-mail) or created, the role claim maps
to roles, and group (and app role) claims map to admin groups, the members of role assignments.

Configuration (console/settings.py, README "Single sign-on"): OIDC_ISSUER, OIDC_CLIENT_ID, OIDC_CLIENT_SECRET,
OIDC_PROVIDER_NAME (the button: "Sign in with ..."), OIDC_ROLE_CLAIM ("roles" for Entra app roles, "groups" for
group claims), OIDC_ROLE_MAP ("claim value=Role name;..."; any role that exists as a group, built-in or custom),
OIDC_GROUP_CLAIMS ("groups,roles"), OIDC_GROUP_MAP ("claim value=Admin group name;..."; admin groups that exist),
OIDC_LOCAL_PASSWORDS (off: only "Sign in with ..." remains).

The provider decides the roles: at every sign-in the user's roles are set to what the role claim maps to (when
OIDC_ROLE_MAP is set), and their membership of the admin groups OIDC_GROUP_MAP names is set to the groups their
group claims map to (admin groups it does not name are left alone), so a role assignment made to such an admin
group gives them its role and scope, and taking someone out of a group at the provider takes the role away at their
next sign-in. The two maps are separate mechanisms on purpose: OIDC_ROLE_MAP grants a role over all devices,
OIDC_GROUP_MAP hands the role and scope over to role assignments managed in the console. Someone who then holds no
role is refused with the reason: on a first sign-in nothing is created or linked for them; someone who signed in
before keeps what was taken away taken away.
"""

from __future__ import annotations

import hashlib
import logging
import re

import jwt
import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.core.exceptions import SuspiciousOperation
from django.db import IntegrityError, transaction
from django.utils import timezone
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.utils import import_from_settings

from . import audit, text
from .models import AdminGroup, AuditEvent, SingleSignOnIdentity
from .rbac import role_names

logger = logging.getLogger(__name__)

DISCOVERY_CACHE_SECONDS = 3600
SETTINGS_ACTION = "signin.settings.update"
# mozilla-django-oidc's setting names -> the discovery document's keys, and -> our own environment's names
_ENDPOINTS = {
    "OIDC_OP_AUTHORIZATION_ENDPOINT": "authorization_endpoint",
    "OIDC_OP_TOKEN_ENDPOINT": "token_endpoint",
    "OIDC_OP_USER_ENDPOINT": "userinfo_endpoint",
    "OIDC_OP_JWKS_ENDPOINT": "jwks_uri",
}
_RENAMED = {"OIDC_RP_CLIENT_ID": "OIDC_CLIENT_ID", "OIDC_RP_CLIENT_SECRET": "OIDC_CLIENT_SECRET"}


class SignInRefused(Exception):
    """The provider vouched for someone the console will not let in; the message tells them why."""


class ProviderUnavailable(Exception):
    """The provider could not be reached or answered something that is not OpenID Connect."""


def enabled() -> bool:
    return bool(settings.OIDC_ISSUER)


def provider_name() -> str:
    return settings.OIDC_PROVIDER_NAME


def login_context() -> dict:
    """What the sign-in page needs to know: which ways of signing in are offered."""
    return {
        "sso_enabled": enabled(),
        "sso_provider": provider_name(),
        "local_passwords": settings.OIDC_LOCAL_PASSWORDS,
    }


# ------------------------------------------------------------------------------------------------ discovery


def discovery() -> dict:
    """The provider's discovery document, cached an hour so that a sign-in costs no extra round trip."""
    key = "oidc-discovery-" + hashlib.sha256(settings.OIDC_ISSUER.encode()).hexdigest()
    document = cache.get(key)
    if document is None:
        document = _fetch_discovery(settings.OIDC_ISSUER)
        cache.set(key, document, DISCOVERY_CACHE_SECONDS)
    return document


def _fetch_discovery(issuer: str) -> dict:
    url = f"{issuer}/.well-known/openid-configuration"
    try:
        response = requests.get(url, timeout=settings.OIDC_TIMEOUT)
        response.raise_for_status()
        document = response.json()
    except (requests.RequestException, ValueError) as exc:
        raise ProviderUnavailable(f"its discovery document at {url} could not be read ({exc})") from exc
    if not isinstance(document, dict) or str(document.get("issuer", "")).rstrip("/") != issuer:
        raise ProviderUnavailable(
            f"the discovery document at {url} is for another issuer (check OIDC_ISSUER)"
        )
    missing = [
        name for name in ("authorization_endpoint", "token_endpoint", "jwks_uri") if not document.get(name)
    ]
    if missing:
        raise ProviderUnavailable(f"the discovery document at {url} lacks {', '.join(missing)}")
    return document


def setting(attr: str, *default):
    """mozilla-django-oidc's settings: endpoints from the discovery document, the rest from ours."""
    if attr in _ENDPOINTS:
        return discovery().get(_ENDPOINTS[attr])
    return import_from_settings(_RENAMED.get(attr, attr), *default)


# ---------------------------------------------------------------------------------------------------- roles


def claim_values(claims: dict, name: str | None = None) -> list[str]:
    """A claim (the role claim by default) as a list of strings (providers send a list, a single string, or
    nothing)."""
    raw = claims.get(settings.OIDC_ROLE_CLAIM if name is None else name)
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list):
        return []
    return [value for value in raw if isinstance(value, str)]


def _warn_unknown(names: set[str], known: set[str], variable: str, kind: str) -> None:
    unknown = sorted(names - known)
    if unknown:
        logger.warning("%s names %s that do not exist: %s", variable, kind, ", ".join(unknown))


def mapped_roles(claims: dict) -> list[Group]:
    """The roles (groups, built-in or custom) that the user's role claim values map to (OIDC_ROLE_MAP)."""
    values = claim_values(claims)
    names = {settings.OIDC_ROLE_MAP[value] for value in values if value in settings.OIDC_ROLE_MAP}
    roles = list(Group.objects.filter(name__in=names).order_by("name"))
    _warn_unknown(names, {role.name for role in roles}, "OIDC_ROLE_MAP", "roles")
    return roles


def group_claim_values(claims: dict) -> set[str]:
    """The values of every OIDC_GROUP_CLAIMS claim: Entra sends security groups (object ids) as "groups" and app
    roles as "roles"; Keycloak and Okta send group names as "groups"."""
    return {value for name in settings.OIDC_GROUP_CLAIMS for value in claim_values(claims, name)}


def _mapped_admin_group_names() -> set[str]:
    return {name.casefold() for name in settings.OIDC_GROUP_MAP.values()}


def managed_admin_groups() -> list[AdminGroup]:
    """The admin groups whose membership the provider decides: those OIDC_GROUP_MAP names (case aside)."""
    names = _mapped_admin_group_names()
    return [group for group in AdminGroup.objects.order_by("name") if group.name.casefold() in names]


def mapped_admin_groups(claims: dict) -> list[AdminGroup]:
    """The admin groups the user's group (and app role) claims map to through OIDC_GROUP_MAP."""
    values = group_claim_values(claims)
    names = {
        settings.OIDC_GROUP_MAP[value].casefold() for value in values if value in settings.OIDC_GROUP_MAP
    }
    groups = [group for group in managed_admin_groups() if group.name.casefold() in names]
    _warn_unknown(names, {group.name.casefold() for group in groups}, "OIDC_GROUP_MAP", "admin groups")
    return groups


def follow_claims(user, claims: dict, actor: audit.Actor) -> None:
    """The provider decides: the user's roles become exactly what OIDC_ROLE_MAP maps their role claim to (when it
    is set), and their membership of the admin groups OIDC_GROUP_MAP names becomes exactly the mapped groups
    (other admin groups untouched). Each change is audit-logged with before and after."""
    if settings.OIDC_ROLE_MAP:
        _set_roles(user, mapped_roles(claims), actor)
    if settings.OIDC_GROUP_MAP:
        _set_admin_groups(user, managed_admin_groups(), mapped_admin_groups(claims), actor)


def no_role_reason(user, claims: dict) -> str:
    """Why the user holds no role after their claims were followed, as the sign-in page tells them; "" when they
    hold one (directly, through a role assignment, or through an admin group's)."""
    if user.is_superuser or role_names(user):
        return ""
    role_values = set(claim_values(claims))
    roles = {settings.OIDC_ROLE_MAP[v] for v in role_values if v in settings.OIDC_ROLE_MAP}
    group_values = group_claim_values(claims)
    groups = {settings.OIDC_GROUP_MAP[v] for v in group_values if v in settings.OIDC_GROUP_MAP}
    existing_roles = set(Group.objects.filter(name__in=roles).values_list("name", flat=True))
    existing_groups = {g.name.casefold() for g in managed_admin_groups()}
    unknown = sorted(roles - existing_roles)
    unknown_groups = sorted(name for name in groups if name.casefold() not in existing_groups)
    if unknown:
        reason = f"your groups map to {', '.join(unknown)}, which is not a role in this console"
    elif unknown_groups:
        reason = (
            f"your groups map to {', '.join(unknown_groups)}, which is not an admin group in this console"
        )
    elif groups:
        reason = (
            f"your groups make you a member of {', '.join(sorted(groups))}, but no role assignment is made to that "
            "admin group"
        )
    else:
        claims_named = " or ".join(f"“{name}”" for name in _claims_consulted())
        reason = f"none of your {claims_named} claims maps to a role in this console"
    who = text.strip_unsafe(str(claims.get("email") or claims.get("preferred_username") or claims.get("sub")))
    return (
        f"{provider_name()} signed you in as {who[:120]}, but you have no role here: {reason}. Ask a Global "
        f"Administrator to give you a role at {provider_name()} (or to add it to {_maps_named()})."
    )


def _claims_consulted() -> list[str]:
    names = [settings.OIDC_ROLE_CLAIM] if settings.OIDC_ROLE_MAP else []
    if settings.OIDC_GROUP_MAP:
        names += [name for name in settings.OIDC_GROUP_CLAIMS if name not in names]
    return names


def _maps_named() -> str:
    names = [name for name in ("OIDC_ROLE_MAP", "OIDC_GROUP_MAP") if getattr(settings, name)]
    return " or ".join(names) or "OIDC_ROLE_MAP"


def _set_roles(user, roles: list[Group], actor: audit.Actor) -> None:
    """The provider decides: the user's roles become exactly the mapped ones (audited when they change)."""
    before = sorted(user.groups.values_list("name", flat=True))
    after = sorted(role.name for role in roles)
    if before == after:
        return
    user.groups.set(roles)
    audit.record(
        "user.roles.update",
        user,
        object_type="User",
        before={"roles": before},
        after={"roles": after},
        actor=actor,
    )


def _set_admin_groups(user, managed: list[AdminGroup], wanted: list[AdminGroup], actor: audit.Actor) -> None:
    """The user's membership of the ``managed`` admin groups becomes ``wanted``; other admin groups stay."""
    before = sorted(user.admin_groups.values_list("name", flat=True))
    current = set(user.admin_groups.values_list("pk", flat=True))
    wanted_pks = {group.pk for group in wanted}
    leave = [group for group in managed if group.pk in current and group.pk not in wanted_pks]
    join = [group for group in wanted if group.pk not in current]
    if not leave and not join:
        return
    user.admin_groups.remove(*leave)
    user.admin_groups.add(*join)
    audit.record(
        "user.admin_groups.update",
        user,
        object_type="User",
        before={"admin_groups": before},
        after={"admin_groups": sorted(user.admin_groups.values_list("name", flat=True))},
        actor=actor,
    )


# ----------------------------------------------------------------------------------------------- the backend


def _username_for(claims: dict) -> str:
    """A free username from the provider's preferred username or e-mail (Django's allowed characters only)."""
    wanted = str(claims.get("preferred_username") or claims.get("email") or f"sso-{claims['sub']}")
    base = re.sub(r"[^\w.@+-]", "-", wanted)[:140] or "sso-user"
    users = get_user_model().objects
    candidate, n = base, 1
    while users.filter(username__iexact=candidate).exists():
        n += 1
        candidate = f"{base}-{n}"
    return candidate


class OIDCBackend(OIDCAuthenticationBackend):
    """mozilla-django-oidc's backend with the endpoints discovered, the ID token's issuer and audience checked,
    users matched by subject or e-mail, and roles from the claims."""

    get_settings = staticmethod(setting)
    OIDC_RP_IDP_SIGN_KEY = None

    def __init__(self, *args, **kwargs):
        # Not the parent's: it reads the endpoints, and Django builds a backend for every request that carries a
        # session. The provider is asked for them only when someone signs in (the properties below).
        self.UserModel = get_user_model()

    @property
    def OIDC_OP_TOKEN_ENDPOINT(self) -> str:
        return setting("OIDC_OP_TOKEN_ENDPOINT")

    @property
    def OIDC_OP_USER_ENDPOINT(self) -> str | None:
        return setting("OIDC_OP_USER_ENDPOINT")

    @property
    def OIDC_OP_JWKS_ENDPOINT(self) -> str:
        return setting("OIDC_OP_JWKS_ENDPOINT")

    @property
    def OIDC_RP_CLIENT_ID(self) -> str:
        return settings.OIDC_CLIENT_ID

    @property
    def OIDC_RP_CLIENT_SECRET(self) -> str:
        return settings.OIDC_CLIENT_SECRET

    @property
    def OIDC_RP_SIGN_ALGO(self) -> str:
        return settings.OIDC_RP_SIGN_ALGO

    def _verify_jws(self, payload, key):
        """The signature, and also the issuer, the audience and the expiry (the library checks the first only)."""
        alg = jwt.get_unverified_header(payload).get("alg")
        if alg != self.OIDC_RP_SIGN_ALGO:
            raise SuspiciousOperation(f"the ID token is signed with {alg!r}, not {self.OIDC_RP_SIGN_ALGO!r}")
        try:
            return jwt.decode(
                payload,
                key,
                algorithms=[alg],
                audience=self.OIDC_RP_CLIENT_ID,
                issuer=discovery()["issuer"],
                options={"require": ["iss", "aud", "exp", "sub"]},
            )
        except jwt.InvalidTokenError as exc:
            raise SuspiciousOperation(f"the ID token was refused: {exc}") from exc

    def get_userinfo(self, access_token, id_token, payload):
        """The ID token's claims plus the userinfo endpoint's: Entra puts roles and groups in the ID token only."""
        claims = dict(payload)
        if self.OIDC_OP_USER_ENDPOINT:
            userinfo = super().get_userinfo(access_token, id_token, payload)
            if str(userinfo.get("sub")) != str(payload.get("sub")):
                raise SuspiciousOperation("the userinfo endpoint answered for another subject")
            claims.update(userinfo)
        return claims

    def get_or_create_user(self, access_token, id_token, payload):
        claims = self.get_userinfo(access_token, id_token, payload)
        if not claims.get("sub"):
            raise SuspiciousOperation("the provider sent no subject")
        with transaction.atomic():
            identity = self._linked_identity(claims)
            first_time = identity is None
            if first_time:
                identity = self._link(claims)
            follow_claims(identity.user, claims, _actor(self.request, identity.user))
            refusal = no_role_reason(identity.user, claims)
            if refusal and first_time:
                raise SignInRefused(refusal)  # rolled back: no account is created or linked for them
            if not refusal:
                identity.last_sign_in_at = timezone.now()
                identity.email = str(claims.get("email") or "")[:254]
                identity.save(update_fields=["last_sign_in_at", "email"])
        if refusal:
            # someone already linked: what the provider no longer grants stays taken away, and they are refused
            raise SignInRefused(refusal)
        return identity.user

    def _linked_identity(self, claims: dict) -> SingleSignOnIdentity | None:
        """The link for this subject, if they signed in before (refused when their account is disabled)."""
        issuer, subject = settings.OIDC_ISSUER, str(claims["sub"])[:255]
        identity = (
            SingleSignOnIdentity.objects.select_related("user").filter(issuer=issuer, subject=subject).first()
        )
        if identity is not None and not identity.user.is_active:
            raise SignInRefused("Your console account is disabled. Ask a Global Administrator to enable it.")
        return identity

    def _link(self, claims: dict) -> SingleSignOnIdentity:
        """A first sign-in: linked to the user with this (verified) e-mail, or to a new user."""
        issuer, subject = settings.OIDC_ISSUER, str(claims["sub"])[:255]
        user = self._user_by_email(claims) or self._create_user(claims)
        try:
            with transaction.atomic():
                return SingleSignOnIdentity.objects.create(user=user, issuer=issuer, subject=subject)
        except IntegrityError as exc:
            # the same person's first sign-in in two tabs at once: the other one linked them first
            raise SignInRefused("You are already being signed in in another window: start again.") from exc

    def _user_by_email(self, claims: dict):
        email = str(claims.get("email") or "")
        if not email or claims.get("email_verified") is False:
            return None
        users = list(self.UserModel.objects.filter(email__iexact=email)[:2])
        if not users:
            return None
        if len(users) > 1:
            raise SignInRefused(
                f"More than one console account has the e-mail address {email}: ask a Global Administrator to "
                "give each account its own address."
            )
        user = users[0]
        if user.sso_identities.filter(issuer=settings.OIDC_ISSUER).exists():
            raise SignInRefused(
                f"The console account with the e-mail address {email} is linked to another {provider_name()} "
                "account. Ask a Global Administrator."
            )
        if not user.is_active:
            raise SignInRefused("Your console account is disabled. Ask a Global Administrator to enable it.")
        return user

    def _create_user(self, claims: dict):
        user = self.UserModel.objects.create_user(
            _username_for(claims),
            email=str(claims.get("email") or "")[:254],
            first_name=str(claims.get("given_name") or "")[:150],
            last_name=str(claims.get("family_name") or "")[:150],
        )
        audit.record(
            "user.create",
            user,
            object_type="User",
            after={
                "username": user.username,
                "email": user.email,
                "created_by": f"{provider_name()} sign-in",
            },
            actor=_actor(self.request, user),
        )
        return user


# ------------------------------------------------------------------------------------------------- auditing


def settings_snapshot() -> dict:
    """The sign-in settings as the audit log shows them (whether a secret is set, never the secret)."""
    return {
        "single_sign_on": enabled(),
        "issuer": settings.OIDC_ISSUER,
        "client_id": settings.OIDC_CLIENT_ID,
        "client_secret_set": bool(settings.OIDC_CLIENT_SECRET),
        "provider_name": settings.OIDC_PROVIDER_NAME,
        "role_claim": settings.OIDC_ROLE_CLAIM,
        "role_map": dict(settings.OIDC_ROLE_MAP),
        "group_claims": list(settings.OIDC_GROUP_CLAIMS),
        "group_map": dict(settings.OIDC_GROUP_MAP),
        "local_passwords": settings.OIDC_LOCAL_PASSWORDS,
    }


# What a console that never had single sign-on configured has: no record is needed for it.
NEVER_CONFIGURED = {
    "single_sign_on": False,
    "issuer": "",
    "client_id": "",
    "client_secret_set": False,
    "provider_name": "single sign-on",
    "role_claim": "roles",
    "role_map": {},
    "group_claims": ["groups", "roles"],
    "group_map": {},
    "local_passwords": True,
}


def audit_settings_change() -> None:
    """Sign-in settings come from the environment, so their change is noticed, not made, here: the first sign-in
    page served after a restart with other settings records the change (before/after) in the audit log."""
    current = settings_snapshot()
    last = AuditEvent.objects.filter(action=SETTINGS_ACTION).order_by("-at", "-id").first()
    previous = last.after if last is not None else NEVER_CONFIGURED
    if previous == current:
        return
    with transaction.atomic():
        # one record, even when several web processes serve the sign-in page at the same moment
        latest = AuditEvent.objects.select_for_update().filter(action=SETTINGS_ACTION).order_by("-at", "-id")
        latest = latest.first()
        if latest is not None and latest.after == current:
            return
        audit.record(
            SETTINGS_ACTION,
            object_type="Sign-in settings",
            object_id="sign-in",
            object_repr="Single sign-on and local passwords",
            before=previous,
            after=current,
            actor=audit.SYSTEM,
        )


def audit_sign_in(request, user, method: str) -> None:
    audit.record(
        "login.succeeded",
        user,
        object_type="User",
        after={"method": method, "roles": role_names(user)},
        actor=_actor(request, user),
    )


def audit_refusal(request, reason: str) -> None:
    audit.record(
        "login.refused",
        object_type="User",
        object_id="",
        object_repr=f"{provider_name()} sign-in refused",
        after={"method": "sso", "reason": reason[:500]},
        actor=audit.Actor(name="Anonymous", source=AuditEvent.Source.UI, ip=_ip(request)),
    )


def _ip(request) -> str | None:
    return audit.actor_from_request(request).ip


def _actor(request, user) -> audit.Actor:
    """The person signing in (not yet request.user) as the actor of what their sign-in changes."""
    return audit.Actor(user=user, name=user.get_username(), source=AuditEvent.Source.UI, ip=_ip(request))
