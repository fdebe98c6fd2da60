"""CDS Hooks feedback (``POST /cds-services/{id}/feedback``): each item checked, then stored.

A feedback item (CDS Hooks 2.0) names the card (``card``, its uuid), the ``outcome``
(``accepted`` with the ``acceptedSuggestions`` taken, or ``overridden`` with an optional
``overrideReason``: a Coding and a ``userComment``) and the ``outcomeTimestamp``. The
comment is free text that may hold patient data: only whether one was given is kept.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from hipdx.errors import InputError, Problem
from hipdx.store import CardFeedback


def _timestamp(value: Any) -> bool:
    if not isinstance(value, str) or len(value) > 40:
        return False
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return parsed.tzinfo is not None


def parse_feedback(body: Any, service_id: str) -> list[CardFeedback]:
    """The feedback items of a request body, checked.

    Raises
    ------
    InputError
        Not ``{"feedback": [...]}``, or an item without a card uuid, a known outcome, an
        RFC 3339 timestamp, or (when accepted) the accepted suggestions; each named.
    """
    items = body.get("feedback") if isinstance(body, dict) else None
    if not isinstance(items, list) or not items:
        raise InputError('feedback must be {"feedback": [...]} with at least one item')
    problems = []
    out = []
    for i, item in enumerate(items[:100]):
        where = f"feedback[{i}]"
        if not isinstance(item, dict):
            problems.append(Problem(where, "must be an object"))
            continue
        card, outcome = item.get("card"), item.get("outcome")
        if not isinstance(card, str) or not 0 < len(card) <= 100:
            problems.append(Problem(f"{where}.card", "required: the card's uuid"))
        if outcome not in ("accepted", "overridden"):
            problems.append(Problem(f"{where}.outcome", "must be accepted or overridden"))
        if not _timestamp(item.get("outcomeTimestamp")):
            problems.append(Problem(f"{where}.outcomeTimestamp", "required: an RFC 3339 date-time with a time zone"))
        accepted = item.get("acceptedSuggestions")
        ids: list[str] = []
        if outcome == "accepted":
            if not isinstance(accepted, list) or not accepted:
                problems.append(Problem(f"{where}.acceptedSuggestions", "required when the outcome is accepted"))
            else:
                ids = [s.get("id") for s in accepted if isinstance(s, dict) and isinstance(s.get("id"), str)]
                if len(ids) != len(accepted):
                    problems.append(Problem(f"{where}.acceptedSuggestions", 'each must be {"id": suggestion uuid}'))
        reason = item.get("overrideReason")
        coding: dict[str, Any] = {}
        comment = False
        if reason is not None:
            if outcome != "overridden" or not isinstance(reason, dict):
                problems.append(Problem(f"{where}.overrideReason", "only for an overridden card, as an object"))
            else:
                coding = reason.get("reason") if isinstance(reason.get("reason"), dict) else {}
                if reason.get("reason") is not None and not isinstance(coding.get("code"), str):
                    problems.append(Problem(f"{where}.overrideReason.reason", "must be a Coding with a code"))
                comment = isinstance(reason.get("userComment"), str) and bool(reason["userComment"].strip())
        if problems:
            continue
        out.append(
            CardFeedback(
                service_id=service_id,
                card_uuid=card,
                outcome=outcome,
                outcome_timestamp=item["outcomeTimestamp"],
                accepted_suggestions=",".join(ids) or None,
                override_reason_system=coding.get("system") if isinstance(coding.get("system"), str) else None,
                override_reason_code=coding.get("code") if isinstance(coding.get("code"), str) else None,
                override_reason_display=coding.get("display") if isinstance(coding.get("display"), str) else None,
                user_comment_given=comment,
            )
        )
    if len(items) > 100:
        problems.append(Problem("feedback", "at most 100 items per request"))
    if problems:
        raise InputError("the feedback is not valid", problems)
    return out
