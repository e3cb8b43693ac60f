"""What the app holds: the model catalogue (local folders and Hub repos, from the environment), the cache that
loads each model once, and the known visitors. Handlers look models up here by catalogue key only.
"""

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from recsys.app.catalogue import ModelCache, ModelEntry, Served, default_model, discover_hub, discover_local
from recsys.app.text import MAX_KEY_CHARS, clean_text, code, md, name_list
from recsys.app.visitors import Visitors, load_visitors
from recsys.models import REGISTRY

log = logging.getLogger("recsys.app")


@dataclass
class AppService:
    """Built once when app.py is imported (`from_env`); `refresh` re-reads the catalogue and the visitors."""

    checkpoints_dir: str = "checkpoints"
    hub_repos: tuple[str, ...] = ()
    data_dir: str | None = None
    samples_file: str | None = None
    catalogue: dict[str, ModelEntry] = field(default_factory=dict)
    visitors: Visitors = field(default_factory=Visitors)
    notes: list[str] = field(default_factory=list)
    cache: ModelCache = field(default_factory=ModelCache)
    # models trained on an upload (recsys.app.workbench): key -> entry, and their visitors; the keys hold the
    # upload's random token and are listed only in the page session that trained them
    private: dict[str, ModelEntry] = field(default_factory=dict)
    private_visitors: dict[str, Visitors] = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ, list_models: Callable | None = None) -> "AppService":
        checkpoints = environ.get("RECSYS_CHECKPOINTS") or "checkpoints"
        service = cls(
            checkpoints_dir=checkpoints,
            hub_repos=tuple(r.strip() for r in environ.get("RECSYS_MODELS", "").split(",") if r.strip()),
            data_dir=environ.get("RECSYS_DATA") or "data/processed/synthetic",
            samples_file=environ.get("RECSYS_SAMPLES") or str(Path(checkpoints) / "sample_sessions.json"),
        )
        service.refresh(list_models)
        return service

    def refresh(self, list_models: Callable | None = None) -> None:
        """Re-scan local folders and Hub repos, and re-read the visitors."""
        hub_entries, self.notes = discover_hub(self.hub_repos, list_models)
        self.catalogue = {e.key: e for e in discover_local(self.checkpoints_dir) + hub_entries}
        self.visitors = load_visitors(self.data_dir, self.samples_file)

    def add_private(self, entries: list[ModelEntry], visitors: Visitors) -> None:
        for entry in entries:
            self.private[entry.key] = entry
            self.private_visitors[entry.key] = visitors

    def forget_private(self, prefix: str) -> None:
        """Drop the private entries whose key starts with `prefix` (an upload removed or retrained)."""
        for key in [k for k in self.private if k.startswith(prefix)]:
            self.private.pop(key, None)
            self.private_visitors.pop(key, None)

    def visitors_for(self, key) -> Visitors:
        """The visitors to show beside a model: an upload's test visitors for its models, else the app's."""
        return self.private_visitors.get(key, self.visitors) if isinstance(key, str) else self.visitors

    @property
    def choices(self) -> list[tuple[str, str]]:
        """(label, key) pairs for the model dropdown."""
        return [(e.label, e.key) for e in self.catalogue.values()]

    @property
    def default_model(self) -> str | None:
        return default_model(list(self.catalogue.values()))

    @property
    def kinds(self) -> list[str]:
        """The registry models the catalogue serves (their keys, each once, in registry order). An entry whose
        kind is no registry key (a Hub folder named otherwise, a hand-made folder) is left out."""
        served = {e.kind for e in self.catalogue.values()}
        return [key for key in REGISTRY if key in served]

    def served(self, key) -> Served:
        """The loaded model of a catalogue key. Only catalogue entries load: a request cannot name a path."""
        key = clean_text(key, MAX_KEY_CHARS)
        entry = self.catalogue.get(key) or self.private.get(key)
        if entry is None and not self.catalogue:
            raise LookupError("No model is available: train one (make train) or set RECSYS_MODELS to a Hub repo.")
        if entry is None:
            raise LookupError(f"Unknown model {code(key)}. Choose one of: {name_list(list(self.catalogue), 20)}.")
        try:
            return self.cache.get(entry)
        except Exception as err:
            log.exception("loading %s failed", entry.source)
            raise LookupError(f"Model {code(key)} could not be loaded: {md(err, 300)}") from None
