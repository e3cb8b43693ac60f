"""recsys.heap: glibc keeps freed memory while a model trains on the CPU, and releases it afterwards."""

import sys

import pytest

from recsys import heap


class FakeLibc:
    def __init__(self):
        self.calls = []

    def mallopt(self, param, value):
        self.calls.append(("mallopt", param, value))
        return 1

    def malloc_trim(self, pad):
        self.calls.append(("malloc_trim", pad))
        return 1


def test_sets_the_training_knobs_and_releases_after_even_on_error(monkeypatch):
    fake = FakeLibc()
    monkeypatch.setattr(heap, "_glibc", lambda: fake)
    with pytest.raises(RuntimeError):
        with heap.retained_heap() as active:
            assert active
            assert fake.calls == [("mallopt", p, v) for p, v in heap.TRAINING.items()]
            raise RuntimeError("training failed")
    after = fake.calls[len(heap.TRAINING):]
    assert after == [("mallopt", p, v) for p, v in heap.AFTER.items()] + [("malloc_trim", 0)]
    assert heap.TRAINING[heap.M_MMAP_THRESHOLD] <= 32 << 20  # glibc refuses a larger mmap threshold


def test_disabled_or_without_glibc_it_touches_nothing(monkeypatch):
    fake = FakeLibc()
    monkeypatch.setattr(heap, "_glibc", lambda: fake)
    with heap.retained_heap(enabled=False) as active:
        assert not active
    monkeypatch.setattr(heap, "_glibc", lambda: None)
    with heap.retained_heap() as active:
        assert not active
    assert fake.calls == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_real_glibc_accepts_every_setting():
    libc = heap._glibc()
    if libc is None:
        pytest.skip("not glibc")
    for param, value in {**heap.TRAINING, **heap.AFTER}.items():
        assert libc.mallopt(param, value) == 1, (param, value)  # mallopt returns 0 for a refused value


def test_cpu_training_runs_inside_it(monkeypatch):
    from recsys.models import build_model
    from recsys.models.base import FitOptions
    from recsys.train import fit
    from tests.test_neural import make_data

    entered = []
    real = heap.retained_heap

    def spy(enabled=True):
        entered.append(enabled)
        return real(enabled)

    monkeypatch.setattr("recsys.train.retained_heap", spy)
    data = make_data()
    model = build_model("gru4rec", data.n_items, {"emb_dim": 8, "hidden": 8})
    fit(model, data, FitOptions(max_epochs=1, progress=False, accelerator="cpu"))
    assert entered == [True]
