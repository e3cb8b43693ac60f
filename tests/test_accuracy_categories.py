"""The accuracy suite's Beauty categories: each item's leaf category from S3-Rec's item2attributes.json, where a
list is the brand (if any) followed by the category path."""

import json

import pandas as pd

from tools.bench.accuracy import ACCURACY_DATASETS, s3rec_leaf_categories


def test_leaf_category_skips_the_brand_and_takes_the_last_category(tmp_path):
    path = tmp_path / "attrs.json"
    # 1, 5 and 9 are brands (only ever first); 2, 3, 4, 6 are categories (after the first position somewhere)
    path.write_text(json.dumps({"10": [1, 2, 3], "11": [5, 2, 4], "12": [2, 6], "13": [9], "14": [1, 3, 2]}))
    got = s3rec_leaf_categories(path, pd.Series(["10", "11", "12", "13", "14", "15"], dtype="string"))
    assert list(got.fillna("none")) == ["3", "4", "6", "none", "2", "none"]


def test_beauty_takes_its_categories_from_the_s3rec_attributes():
    assert ACCURACY_DATASETS["beauty"].categories == "s3rec/Beauty_item2attributes.json"
    assert all(spec.categories is None for name, spec in ACCURACY_DATASETS.items() if name != "beauty")
