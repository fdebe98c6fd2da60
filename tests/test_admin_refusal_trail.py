"""A refused admin call is recorded (who, what, where from, 403), but what the trail keeps of the
request is no more than the route itself accepts: a user name the route would refuse (control
characters, spaces, over 100 characters) is not written into the audit trail as the caller gave it."""

from __future__ import annotations

from sqlalchemy import select

from api_support import Api
from hipdx.store.tables import AccessEvent
from web_support import api  # noqa: F401  (api: the fixture, SQLite)

#: an escape sequence that clears a terminal, a tab and a fake line, then padding
NAME = "%1b%5b2J%09admin%20granted%20" + "x" * 150


def test_a_refused_admin_call_keeps_only_a_plain_name_in_the_trail(api: Api) -> None:
    clinician = api.sign_in("clinician")
    answers = [api.client.patch(f"/api/v1/users/{NAME}", json={"role": "admin"}, headers=clinician),
               api.client.put(f"/api/v1/users/{NAME}/password", json={"password": "y" * 20}, headers=clinician),
               api.client.patch("/api/v1/users/dr.nurse", json={"role": "admin"}, headers=clinician)]
    assert [a.status_code for a in answers] == [403, 403, 403]
    with api.engine.connect() as connection:
        rows = [tuple(r) for r in connection.execute(
            select(AccessEvent.username, AccessEvent.action, AccessEvent.what, AccessEvent.path, AccessEvent.status_code)
            .where(AccessEvent.status_code == 403).order_by(AccessEvent.id))]
    assert rows == [("clinician", "U", "User/{username}", "/api/v1/users/{username}", 403),
                    ("clinician", "U", "User/{username}", "/api/v1/users/{username}/password", 403),
                    ("clinician", "U", "User/dr.nurse", "/api/v1/users/dr.nurse", 403)]  # a plain name is kept
    admin = api.sign_in("admin")  # the route itself refuses the name: a 400, and nothing written
    assert api.client.patch(f"/api/v1/users/{NAME}", json={"role": "admin"}, headers=admin).status_code == 400
