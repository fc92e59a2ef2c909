"""The dated catalog: hardware, models, prices and field definitions, each entry with its source.

Data lives in `catalog/data/` as YAML (plus HF `config.json` files under `models/`). Code looks
entries up by name; an unknown name gets an error with the closest names. Users extend or
override entries with their own YAML file (`--catalog PATH`).
"""

from aiinfra.catalog.loader import Catalog, default_catalog, normalize_name, set_user_catalogs

__all__ = ["Catalog", "default_catalog", "normalize_name", "set_user_catalogs"]
