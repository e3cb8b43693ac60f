"""Overrides fail loudly: a key that is not a field of the config it overrides is an error naming it.

The one check behind model parameters and their {"train": {...}} part (recsys.models.build_model), the
preparation options (recsys.prepare) and a model folder's config.json (recsys.folder), like nanoGPT's
configurator's "Unknown config key". The values themselves are checked by the configs (ModelConfig checks each
field's type, then its range).
"""

import dataclasses
from collections.abc import Mapping


class UnknownKeys(ValueError):
    """Overrides that name no field of the config they are for."""


def check_keys(cls: type, given: Mapping, what: str) -> None:
    """Raise UnknownKeys unless every key of `given` is a field of the dataclass `cls`; `what` names the
    overrides in the message ("unknown {what} [...]: {cls} does not know them (known: [...])")."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(given) - known, key=str)
    if unknown:
        raise UnknownKeys(f"unknown {what} {unknown}: {cls.__name__} does not know them (known: {sorted(known)})")


def strict_replace(config, overrides: Mapping, what: str):
    """`dataclasses.replace(config, **overrides)`, refusing keys that are not fields (see `check_keys`)."""
    check_keys(type(config), overrides, what)
    return dataclasses.replace(config, **overrides)
