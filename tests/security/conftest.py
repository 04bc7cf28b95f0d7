"""Fixtures of the security tests: the Graph API's token clients and devices are shared with tests/api."""

from tests.api.conftest import (  # noqa: F401 - re-exported fixtures
    _fast_password_hashing,
    _fresh_throttle_buckets,
    ga_api,
    make_device,
    make_group,
    tenant_on,
)
