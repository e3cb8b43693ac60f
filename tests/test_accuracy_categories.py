"""The accuracy suite's real categories: Beauty's leaf category from S3-Rec's item2attributes.json, where a list
is the brand (if any) followed by the category path; ML-1M's genre list from movies.dat through the SASRec id
mapping."""

import json
from pathlib import Path

import pandas as pd
import pytest

from tools.bench.accuracy import ACCURACY_DATASETS, ml1m_genres, s3rec_leaf_categories


def test_leaf_category_skips_the_brand_and_takes_the_last_category(tmp_path):
    path = tmp_path / "attrs.json"
    # 1, 5 and 9 are brands (only ever first); 2, 3, 4, 6 are categories (after the first position somewhere)
    path.write_text(json.dumps({"10": [1, 2, 3], "11": [5, 2, 4], "12": [2, 6], "13": [9], "14": [1, 3, 2]}))
    got = s3rec_leaf_categories(path, pd.Series(["10", "11", "12", "13", "14", "15"], dtype="string"))
    assert list(got.fillna("none")) == ["3", "4", "6", "none", "2", "none"]


@pytest.mark.parametrize("sep", [";", "::"])  # the shared copy's layout, and GroupLens's own
def test_ml1m_films_take_their_genre_list_through_the_sasrec_mapping(tmp_path, sep):
    mapping, movies = tmp_path / "map.txt", tmp_path / "movies.dat"
    mapping.write_text("1 3\n2 1\n3 99\nbroken line here\n")  # SASRec id -> GroupLens id; 99 has no film
    movies.write_bytes(f"1{sep}Toy Story (1995){sep}Animation|Children's|Comedy\n"
                       f"3{sep}Grumpier Old Men; or, Caf\xe9 (1995){sep}Comedy|Romance\n".encode("latin-1"))
    got = ml1m_genres(mapping, movies, pd.Series(["1", "2", "3", "4"], dtype="string"))
    assert list(got.fillna("none")) == ["Comedy|Romance", "Animation|Children's|Comedy", "none", "none"]


def test_beauty_and_ml1m_take_real_categories_and_the_session_sets_none():
    assert ACCURACY_DATASETS["beauty"].categories == ("s3rec/Beauty_item2attributes.json",)
    assert ACCURACY_DATASETS["ml-1m"].categories == ("ml-1m/sas_id_mapping/sas_to_original_items.txt",
                                                     "ml-1m/grouplens_meta/movies.dat")
    assert all(spec.categories is None for name, spec in ACCURACY_DATASETS.items() if name not in ("beauty", "ml-1m"))


def test_the_suite_reads_the_categories_when_the_files_are_there(tmp_path):
    shared = Path(__file__).resolve().parents[2] / "shared" / "data"
    if not (shared / "ml-1m" / "grouplens_meta" / "movies.dat").is_file():
        pytest.skip(f"shared data not found at {shared}")
    from tools.bench.accuracy import _accuracy_data
    from tools.bench.common import Options

    data = _accuracy_data(Options(quick=True, work_dir=tmp_path, shared_data=shared), "ml-1m",
                          ACCURACY_DATASETS["ml-1m"])
    genres = pd.Series(data.items["category_id"])
    assert genres.notna().all() and genres.str.contains("Drama").any()
