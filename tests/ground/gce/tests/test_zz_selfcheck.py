"""Runs last (file order): every response the fake produced during the suite
matched compute.v1.json, and every error matched Google's error shape."""

import requests


def test_every_response_validated(fake):
    r = requests.get(f"{fake['endpoint']}/_ground/validation", timeout=10)
    assert r.status_code == 200
    v = r.json()
    assert v["failures"] == [], "the fake produced invalid responses:\n" + "\n".join(
        f"- {f}" for f in v["failures"])
    assert v["responses"] > 100 and v["requests"] > 20, v
