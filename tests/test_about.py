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


def test_model_card_says_the_data_set_hyperparameters_and_where_the_full_card_is(service, monkeypatch):
    card = cards.model_card(service, "itemknn")
    assert "Trained on: not recorded" in card  # the test folders' metrics.json name no data set
    assert "| k\\_neighbors | 100 |" in card and "It uses the neighbours of the session" in card
    assert "Full model card: `" in card and "README.md`" in card
    model = service.served("itemknn").model
    monkeypatch.setattr(model, "metrics", {**model.metrics, "data": {"source": "synthetic"},
                                           "protocol": {"exclude_seen": False}})
    card = cards.model_card(service, "itemknn")
    assert "Trained on **synthetic** data" in card and "not real shoppers" in card
    assert "repeats allowed (a next item may be one already viewed)" in card
    monkeypatch.setattr(model, "metrics", {**model.metrics, "data": {"name": "diginetica"}})
    assert "Trained on **diginetica**." in cards.model_card(service, "itemknn")


def test_full_model_card_and_training_curves_come_from_the_folder(service, tmp_path):
    folder = service.served("pop").model.folder
    assert cards.full_card(service, "pop") == ""  # no README.md in this folder
    (folder / "README.md").write_text("---\nlibrary_name: recsys\n---\n# Pop on demo data\n\nIt counts.\n")
    assert cards.full_card(service, "pop") == "# Pop on demo data\n\nIt counts."  # front matter dropped
    assert cards.training_curves(service, "pop") is None  # no image in this folder
    from PIL import Image

    Image.new("RGB", (40, 20), (255, 0, 0)).save(folder / "training_curves.png")
    try:
        image = cards.training_curves(service, "pop")
        assert image.shape == (20, 40, 3)
        (folder / "training_curves.png").unlink()
        outside = tmp_path / "elsewhere.png"
        Image.new("RGB", (4, 4)).save(outside)
        (folder / "training_curves.png").symlink_to(outside)  # a link out of the folder is not followed
        assert cards.training_curves(service, "pop") is None
    finally:
        (folder / "training_curves.png").unlink(missing_ok=True)
    assert cards.full_card(service, "no-such-model") == "" and cards.training_curves(service, "nope") is None


def test_a_hub_model_card_links_to_its_hub_page():
    from recsys.app.catalogue import Served

    served = Served(ModelEntry("user/repo/sasrec", "user/repo/sasrec", "hub", "sasrec"), object(), None)
    assert "(https://huggingface.co/user/repo/tree/main/sasrec)" in cards.card_link(served)
