"""Source readers: each turns one dataset's files into the canonical events table (see `schema`).

recsys.prepare.SOURCES maps each source name (these, the synthetic generator and the pre-split formats of
`presplit`) to how it is read from the files given on the command line.
"""

from recsys.datasets.diginetica import read_diginetica
from recsys.datasets.generic import read_item_descriptions, read_table
from recsys.datasets.retailrocket import EVENT_WEIGHTS, read_category_tree, read_retailrocket
from recsys.datasets.schema import EVENT_COLUMNS, DataError, canonical_events
from recsys.datasets.synthetic import SyntheticConfig, generate_events, generate_retailrocket_log
from recsys.datasets.yoochoose import read_yoochoose

# The usual file names of each source, in the order its reader takes them (the first is required).
STANDARD_FILES = {
    "retailrocket": ("events.csv", "item_properties_part1.csv", "item_properties_part2.csv", "category_tree.csv"),
    "yoochoose": ("yoochoose-clicks.dat", "yoochoose-buys.dat"),
    "diginetica": ("train-item-views.csv", "product-categories.csv"),
}

__all__ = [
    "EVENT_COLUMNS",
    "EVENT_WEIGHTS",
    "STANDARD_FILES",
    "DataError",
    "SyntheticConfig",
    "canonical_events",
    "generate_events",
    "generate_retailrocket_log",
    "read_category_tree",
    "read_diginetica",
    "read_item_descriptions",
    "read_retailrocket",
    "read_table",
    "read_yoochoose",
]
