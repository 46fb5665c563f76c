"""Gates of the AI box (role ai_box): its analytics are those the model gives for its cameras."""

from __future__ import annotations

from hazmon.devices import analytics

ROLES = ("ai_box",)
CONFIG = "/etc/hazmon-aibox/analytics.json"


def test_analytics_are_what_the_inventory_gives(box, enterprise):
    deployed = box.file(CONFIG)
    assert deployed.exists, f"{CONFIG} is missing"
    problems = analytics.check(deployed.content_string, enterprise)
    assert not problems, f"{CONFIG}: " + "; ".join(problems)
