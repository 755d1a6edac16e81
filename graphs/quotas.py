"""Problem quotas: a total spread over topics in proportion to their subject's weight."""

from __future__ import annotations

import math


def allocate(weights: dict[str, float], total: int) -> dict[str, int]:
    """Slots per topic, proportional to `weights[topic]`, summing exactly to `total`.

    Largest remainder: each topic gets the floor of its share, then the topics
    with the largest fractional parts (ties by id, so the result is stable) get one more.
    """
    if not weights:
        return {}
    whole = sum(weights.values())
    shares = {topic: total * w / whole for topic, w in weights.items()}
    slots = {topic: math.floor(share) for topic, share in shares.items()}
    left = total - sum(slots.values())
    for topic in sorted(shares, key=lambda t: (-(shares[t] - slots[t]), t))[:left]:
        slots[topic] += 1
    return slots
