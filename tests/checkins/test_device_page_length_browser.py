"""In Chromium: a device with two conflicting ASR policies and a policy in Error has a short device page: policies
collapsed by default, a sentence shared by several settings said once per policy, no internal ids."""

from __future__ import annotations

import os

import pytest
from playwright.sync_api import expect

from policies.catalog import asr_rules, get_catalog
from tests.checkins import fleet as f

pytestmark = pytest.mark.browser

ASR = "Attack Surface Reduction Rules"
SHOT = os.environ.get("FIDELITY_SHOT", "/tmp/fidelity-device-page.png")


def _asr(value_index: int, count: int = 4) -> dict:
    return {rule.id: rule.options[value_index].value for rule, _ in asr_rules(get_catalog())[:count]}


def test_it_keeps_the_device_page_short_and_says_each_thing_once(login, reader, live_server):
    g = f.group("ASR pilot")
    d = f.device("CONTOSO-WS-0500", groups=[g], tamper=True)
    f.policy("ASR block", _asr(1), profile=ASR, include=[g])
    f.policy("ASR audit", _asr(2), profile=ASR, include=[g])
    f.policy("Helpdesk pilot - behavior monitoring off", {f.BEHAVIOR: 0}, include=[g])
    f.checkin(d)

    page = login(reader, f"/devices/{d.pk}/")
    panel = page.locator(f"#checkin-panel-{d.pk}")
    expect(panel.locator('[data-policy="ASR block"] [data-status]')).to_have_text("Conflict")
    page.wait_for_load_state("networkidle")
    page.screenshot(path=SHOT, full_page=True)

    expect(panel.locator("details[open]")).to_have_count(0)  # collapsed by default
    assert "(id " not in page.inner_text("body")
    height = page.evaluate("document.documentElement.scrollHeight")
    assert height < 2600, f"the device page is {height} px tall"
    block = panel.locator(f"#settings-{d.pk}-{_pk('ASR block')}")
    block.locator("summary").click()
    conflict_sentence = block.locator("[data-said-once]")
    expect(conflict_sentence).to_have_count(1)
    text = conflict_sentence.inner_text()
    assert block.inner_text().count(text) == 1, "a shared sentence is repeated on every row"


def _pk(name: str) -> int:
    from policies.models import Policy

    return Policy.objects.get(name=name).pk
