"""What each registry model is, declared once on its class, and what the model cards and the About text make of it."""

import pytest

from recsys.card import about_models, model_card, repo_card
from recsys.models import REGISTRY, describe

FIELDS = ("title", "summary", "description")


@pytest.mark.parametrize("key", sorted(REGISTRY))
def test_every_registry_model_describes_itself(key):
    cls = REGISTRY[key]
    # declared on the class itself, so no registry entry silently shows its parent's words (S-Pop is a Pop)
    assert all(field in vars(cls) for field in FIELDS), f"{cls.__name__} must declare {FIELDS} itself"
    info = describe(key)
    assert (info.key, info.title, info.summary, info.description) == (key, cls.title, cls.summary, cls.description)
    assert all(isinstance(getattr(info, f), str) and getattr(info, f).strip() for f in FIELDS)
    assert "\n" not in info.summary and len(info.summary) <= 120  # one line under a title
    assert "\n" not in info.title and info.description.endswith(".")


def test_titles_are_distinct():
    titles = [describe(key).title for key in REGISTRY]
    assert len(set(titles)) == len(titles)


def test_variant_names_its_base_and_variant():
    base, info = describe("gru4rec-large"), describe("gru4rec-large@big")
    assert info.key == "gru4rec-large@big" and info.summary == base.summary
    assert base.title in info.title and "big" in info.title
    assert info.description.startswith(base.description) and "`big`" in info.description


@pytest.mark.parametrize("name", ["nope", "nope@big", "gru4rec@"])
def test_unknown_names_fail_loudly(name):
    with pytest.raises(KeyError):
        describe(name)


@pytest.mark.parametrize("served", [["pop", "spop", "itemknn", "sr", "sknn", "vsknn", "sasrec"],
                                    ["gru4rec", "lstm"], ["lstm-bi", "hybrid", "lstm-bi"], ["sasrec@small"], []])
def test_about_names_exactly_the_served_models(served):
    text = about_models(served)
    named = [key for key in REGISTRY  # a variant's title is its base's with "(variant ...)" after it
             if any(f"**{describe(key).title}{end}" in text for end in ("**", " (variant "))]
    assert named == [key for key in REGISTRY if key in {s.split("@")[0] for s in served}]
    for key in served:
        assert f"**{describe(key).title}** (`{key}`) — {describe(key).summary}" in text
    assert text.count("\n- ") == len(set(served))  # one line per model, repeats once


def test_about_refuses_an_unknown_model():
    with pytest.raises(KeyError):
        about_models(["pop", "nope"])


@pytest.mark.parametrize("key", sorted(REGISTRY) + ["sknn@wide"])
def test_model_card_carries_the_description(key):
    info = describe(key)
    for card in (model_card(key, {}, {}, {}, None), model_card("folder", {"model": key}, {}, {}, "user/repo")):
        assert f"# {info.title} next-item recommender" in card and info.description in card


def test_cards_of_a_model_outside_the_registry_still_render():
    card = model_card("mine", {"model": "mine"}, {}, {}, None)
    assert "# mine next-item recommender" in card and "not in recsys.REGISTRY" in card
    assert "| [mine](./mine/README.md) (mine) |" in repo_card("user/repo", {"mine": ({"model": "mine"}, {})})


def test_repo_card_shows_titles():
    card = repo_card("user/repo", {"a": ({"model": "vsknn"}, {}), "b": ({"model": "lstm-cat"}, {})})
    for name, key in (("a", "vsknn"), ("b", "lstm-cat")):
        assert f"| [{name}](./{name}/README.md) ({describe(key).title}) |" in card
