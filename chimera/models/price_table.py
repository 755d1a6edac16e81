"""Prices from a maintained table (pydantic's `genai-prices`, an optional extra) for roles whose config gives
none. The config's own prices always win; the table is only read by `chimera plan`, which shows its date."""

from __future__ import annotations

import datetime
import importlib.metadata
from functools import cache
from typing import Any

from chimera.models.costs import Prices


@cache
def _table() -> Any | None:
    try:
        from genai_prices import data_snapshot
    except ImportError:
        return None
    return data_snapshot.get_snapshot()


def table_source() -> str | None:
    """What the table is: the package, its version, and the newest date a price in it took effect."""
    table = _table()
    if table is None:
        return None
    newest = max((price.constraint.start_date for provider in table.providers for model in provider.models
                  for price in _conditional(model.prices) + list(model.price_variants or [])
                  if isinstance(getattr(price.constraint, "start_date", None), datetime.date)
                  and price.constraint.start_date <= datetime.date.today()), default=None)
    version = importlib.metadata.version("genai-prices")
    return f"genai-prices {version}" + (f", prices as of {newest.isoformat()}" if newest else "")


def _conditional(prices: Any) -> list[Any]:
    return list(prices) if isinstance(prices, list) else []


def table_prices(model: str, base_url: str | None, batch_discount: float = 0.5) -> Prices | None:
    """The table's prices for `model` at `base_url`'s provider; None when the table is absent or has none."""
    table = _table()
    if table is None or not model:
        return None
    try:
        from genai_prices import types

        found = table.calc(types.Usage(input_tokens=1_000_000, output_tokens=1_000_000, cache_read_tokens=0), model,
                           None, base_url, None, None)
        cached = table.calc(types.Usage(input_tokens=1_000_000, cache_read_tokens=1_000_000), model, None, base_url,
                            None, None)
    except LookupError:
        return None
    except Exception:  # noqa: BLE001 - a model or URL the table cannot place is simply not priced
        return None
    return Prices(float(found.input_price), float(found.output_price), float(cached.input_price), batch_discount)
