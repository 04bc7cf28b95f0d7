"""Who may GET the webhook pages and the device lab (walked by tests/console/test_access.py): Global
Administrators only."""

from __future__ import annotations

GA, ESM, RO = "ga", "esm", "ro"
GA_ONLY = {GA: 200, ESM: 403, RO: 403}
GA_REDIRECT = {GA: 302, ESM: 403, RO: 403}  # POST-only actions: a GET is sent back to their page

ACCESS = {
    "webhook_settings": (None, GA_ONLY),
    "webhook_test": (None, GA_REDIRECT),
    "webhook_deliveries": (None, GA_ONLY),
    "reports:drift": (None, {GA: 200, ESM: 200, RO: 200}),
}
