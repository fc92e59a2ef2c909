"""The dated price table now lives on the ground floor (`aiinfra.catalog.prices`), so plan, infer and
tco read one price per SKU and term. This name is the same module object, kept for cost's imports."""

import sys

from aiinfra.catalog import prices as _prices

sys.modules[__name__] = _prices
