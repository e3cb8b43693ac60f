"""The app's About text and model card say what each served model is, from the model classes
(recsys.models.describe): the About text names exactly the models the app serves, no other registry model."""

import json

import pytest
from test_app_logic import build_checkpoints

from recsys.app import cards
from recsys.app.catalogue import ModelEntry
from recsys.app.service import AppService
from recsys.app.text import MAX_K, MAX_SESSION_ITEMS
from recsys.models import REGISTRY, describe


def named_models(text: str) -> list[str]:
    """The registry keys whose title the text shows as a model-list entry."""
    return [key for key in REGISTRY if f"**{describe(key).title}**" in text or f"(`{key}`)" in text]


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    root = tmp_path_factory.mktemp("about") / "checkpoints"
    build_checkpoints(root)  # pop, spop, itemknn
    mine = root / "mine"  # a hand-made folder whose kind is no registry key: served, but not described
    mine.mkdir()
    (mine / "config.json").write_text(json.dumps({"model": "mine"}))
    service = AppService.from_env({"RECSYS_CHECKPOINTS": str(root), "RECSYS_DATA": str(root / "none")})
    # a Hub model named after no registry key (its kind is unknown until it loads)
    service.catalogue["user/repo/best"] = ModelEntry("user/repo/best", "user/repo/best", "hub", "best")
    return service


def test_about_names_exactly_the_served_models(service):
    assert service.kinds == ["pop", "spop", "itemknn"]  # registry order, registry kinds only
    text = cards.about(service)
    assert named_models(text) == ["pop", "spop", "itemknn"]
    for key in service.kinds:
        assert f"**{describe(key).title}** (`{key}`) — {describe(key).summary}" in text
    assert "`mine`" not in text and "best" not in text
    assert f"cut to their {MAX_SESSION_ITEMS} most recent items" in text and f"at most {MAX_K} items" in text
    assert "### The metrics" in text and "{" not in text  # every placeholder of about.md filled


def test_about_follows_the_catalogue(service):
    only_pop = AppService(catalogue={"pop": service.catalogue["pop"]})
    assert named_models(cards.about(only_pop)) == ["pop"]
    assert "No model is served." in cards.about(AppService(catalogue={}))


def test_model_card_describes_the_model_from_its_class(service):
    for key in service.kinds:
        info = describe(key)
        first = cards.model_card(service, key).split("\n", 1)[0]
        assert first.startswith("**") and info.summary in first and first.count("**") == 2


def test_a_kind_outside_the_registry_gets_a_neutral_line():
    assert cards.what_it_is("mine") == "Model kind: `mine`."
    assert cards.what_it_is("sessionknn") == "Model kind: `sessionknn`."  # no made-up aliases
    assert cards.what_it_is("gru4rec-large").startswith("**GRU4Rec (large)**")  # its own class, not gru4rec's
    variant = cards.what_it_is("sknn@<b>x</b>")  # the variant's name comes from a folder: escaped
    assert "(variant &lt;b&gt;x&lt;/b&gt;" in variant.replace("\\", "") and "<b>" not in variant
