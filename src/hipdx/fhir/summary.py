"""The FHIR mapping in words: which resources gave which facts, and what was left out and why."""

from __future__ import annotations

from collections import Counter

from hipdx.fhir.mapping import FhirMapping

#: how many left-out items are listed one by one before the rest are counted by reason
LISTED = 25


def format_mapping(mapping: FhirMapping, *, markdown: bool = False, listed: int = LISTED) -> str:
    """Plain text (or Markdown) of a mapping: facts with their sources, then what was left out.

    Left-out resources of types hipdx does not read (Claim, Encounter, ...) are counted, not listed.
    """
    h, bullet = ("## ", "- ") if markdown else ("", "  ")
    resources = {s.resource for s in mapping.sources}
    lines = [
        f"{h}FHIR mapping - {mapping.patient}, assessed on {mapping.assessed_on.isoformat()}",
        "",
        f"{len(mapping.sources)} facts read from {len(resources)} resources (code tables {mapping.code_tables_digest}):",
    ]
    lines += [f"{bullet}{s.field} <- {s.resource}.{s.element}: {s.value}" for s in mapping.sources]
    if mapping.assumed:
        lines += ["", "Assumed (the record does not give them):"]
        lines += [f"{bullet}{a.field} = {a.value}: {a.reason}" for a in mapping.assumed]
    not_read = [u for u in mapping.unmapped if u.reason.endswith("is not read by hipdx")]
    other = [u for u in mapping.unmapped if u not in not_read]
    lines += ["", f"{len(other)} items left out:" if other else "Nothing relevant left out."]
    for item in other[:listed]:
        where = f"{item.resource}.{item.element}" if item.element else item.resource
        lines.append(f"{bullet}{where}: {item.reason}")
    if len(other) > listed:
        counts = Counter(u.reason.split(":")[0][:80] for u in other[listed:])
        lines.append(
            f"{bullet}... and {len(other) - listed} more: " + "; ".join(f"{n} x {r}" for r, n in counts.most_common(8))
        )
    if not_read:
        counts = Counter(u.reason.split(" is not read")[0] for u in not_read)
        lines.append("Resource types not read: " + ", ".join(f"{t} ({n})" for t, n in sorted(counts.items())))
    return "\n".join(lines)
