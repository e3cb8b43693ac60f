"""Readable names for the synthetic shop: departments, category paths, product names, prices, brands, colours.

The synthetic world (recsys.datasets.synthetic) has a two-level category tree (roots and leaves) and items
ranked by popularity inside each leaf. This module dresses it: each root becomes a department ("Sports"), each
leaf a category of that department with a readable path ("Sports › Running › Shoes"), each item a product of its
leaf ("Trail running shoes, graphite") with a brand of the department, a price in the leaf's price band and, for
leaves whose products come in colours, a colour.

Names are unique across items by construction: inside a leaf, items take the (adjective, noun, variant)
combinations in a seeded order, then the same combinations with a brand in front, then numbered models; a leaf
kind used by several leaves (more leaves than a department lists) gets a qualifier ("Kids' shoes") that is also
part of its products' names; no noun is shared by two leaf kinds (tested). Everything is drawn from its own
random stream, so dressing the world changes none of the simulated events.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd

SEP = " › "
COLOURS = ("graphite", "navy", "forest green", "sand", "black", "white", "red", "ocean blue", "charcoal", "olive",
           "burgundy", "mustard", "sky blue", "stone grey", "coral", "plum")
# A department used again as another root is qualified; so is a leaf kind used again (by its department's words).
ROOT_QUALIFIERS = ("Outlet", "Premium", "Trade", "Refurbished")


@dataclass(frozen=True)
class Leaf:
    path: str  # below the department: "Running › Shoes"
    nouns: tuple[str, ...]
    adjectives: tuple[str, ...]
    variants: tuple[str, ...] | None  # None: the product comes in COLOURS
    price: tuple[float, float]  # price band, drawn log-uniformly


@dataclass(frozen=True)
class Department:
    name: str
    brands: tuple[str, ...]
    qualifiers: tuple[str, ...]  # for a leaf kind used again: "Kids' shoes", "Premium cookware"
    leaves: tuple[Leaf, ...]


def _leaf(path: str, nouns: str, adjectives: str, price: tuple[float, float], variants: str | None = None) -> Leaf:
    split = lambda text: tuple(w.strip() for w in text.split(","))  # noqa: E731
    return Leaf(path, split(nouns), split(adjectives), split(variants) if variants else None, price)


DEPARTMENTS = (
    Department("Sports", ("Northpeak", "Stridewell", "Kinetiq", "Alpenrun", "Fleetfoot", "Tidewater"),
               ("kids'", "women's", "men's", "pro", "junior"), (
        _leaf("Running › Shoes", "running shoes, racing flats, trail trainers", "trail, road, cushioned, lightweight, "
              "stability", (45, 190)),
        _leaf("Running › Clothing", "running jacket, running tights, running vest", "breathable, thermal, reflective, "
              "windproof", (20, 120)),
        _leaf("Cycling › Helmets", "cycling helmet, bike helmet", "aero, ventilated, commuter, MIPS", (35, 220)),
        _leaf("Cycling › Lights", "bike light, rear light, handlebar light", "rechargeable, USB-C, 800-lumen, "
              "clip-on", (8, 60)),
        _leaf("Outdoor › Tents", "dome tent, tunnel tent, backpacking tent", "two-person, four-person, ultralight, "
              "storm-proof", (60, 450)),
        _leaf("Outdoor › Backpacks", "hiking backpack, daypack, trekking rucksack", "20-litre, 35-litre, 50-litre, "
              "ventilated", (30, 210)),
        _leaf("Outdoor › Sleeping bags", "sleeping bag, camping quilt", "down, synthetic, three-season, "
              "mummy", (25, 320)),
        _leaf("Fitness › Weights", "dumbbell pair, kettlebell, weight plate", "8 kg, 12 kg, 16 kg, adjustable",
              (15, 140), "cast iron, vinyl, neoprene"),
        _leaf("Fitness › Yoga", "yoga mat, yoga block", "non-slip, cork, eco, extra-thick", (9, 80)),
        _leaf("Swimming › Swimwear", "swimsuit, swim shorts, tankini", "chlorine-resistant, racing, "
              "quick-dry, training", (10, 70)),
        _leaf("Team sports › Balls", "football, basketball, volleyball", "match, training, indoor, size 5", (12, 90)),
    )),
    Department("Home & Kitchen", ("Hearthly", "Copperline", "Nordvik", "Maison Clé", "Oakridge", "Brightside"),
               ("premium", "budget", "designer", "professional", "heritage"), (
        _leaf("Kitchen › Cookware", "frying pan, saucepan, casserole dish", "non-stick, cast iron, stainless steel, "
              "copper-base", (18, 160)),
        _leaf("Kitchen › Small appliances", "electric kettle, toaster, blender", "quiet, retro, compact, "
              "stainless steel", (20, 150)),
        _leaf("Kitchen › Knives", "chef's knife, bread knife, paring knife", "Japanese steel, forged, "
              "serrated, ceramic", (12, 140), "wood handle, black handle, steel handle"),
        _leaf("Dining › Tableware", "dinner plate set, cereal bowl set, stoneware mug", "glazed, rustic, "
              "porcelain, speckled", (10, 75)),
        _leaf("Bedding › Duvets", "duvet, mattress topper", "all-season, feather, hypoallergenic, cooling", (35, 260),
              "single, double, king size"),
        _leaf("Bedding › Pillows", "pillow pair, memory foam pillow", "soft, firm, side-sleeper, organic cotton",
              (15, 90)),
        _leaf("Bath › Towels", "bath towel, hand towel set, bath sheet", "Egyptian cotton, waffle, quick-dry, "
              "bamboo", (8, 60)),
        _leaf("Furniture › Chairs", "dining chair, armchair, bar stool", "oak, velvet, stackable, rattan", (45, 420)),
        _leaf("Lighting › Lamps", "table lamp, floor lamp, desk lamp", "brass, dimmable, ceramic, adjustable",
              (25, 230)),
        _leaf("Storage › Boxes", "storage basket, storage box, laundry basket",
              "woven, stackable, collapsible, seagrass",
              (9, 70)),
    )),
    Department("Fashion", ("Marlow & Finch", "Urbane", "Coastline", "Wren", "Halden", "Juniper Row"),
               ("premium", "vintage", "organic", "limited-edition", "everyday"), (
        _leaf("Women › Dresses", "wrap dress, midi dress, shirt dress", "linen, floral, pleated, jersey", (25, 140)),
        _leaf("Women › Tops", "blouse, camisole, long-sleeve top", "silk, ribbed, oversized, cropped", (14, 80)),
        _leaf("Men › Shirts", "oxford shirt, flannel shirt, polo shirt", "slim-fit, regular-fit, short-sleeve, "
              "organic cotton", (18, 90)),
        _leaf("Men › Trousers", "chinos, cargo trousers, suit trousers", "stretch, tapered, relaxed, wool-blend",
              (25, 120)),
        _leaf("Shoes › Boots", "ankle boots, chelsea boots, hiking boots", "leather, suede, waterproof, lined",
              (45, 230)),
        _leaf("Shoes › Sneakers", "low-top sneakers, high-top sneakers, slip-on sneakers", "canvas, leather, retro, "
              "platform", (30, 140)),
        _leaf("Accessories › Bags", "tote bag, crossbody bag, weekender bag", "leather, canvas, quilted, recycled",
              (20, 260)),
        _leaf("Accessories › Scarves", "scarf, beanie, pair of gloves", "merino, cashmere, chunky-knit, fleece",
              (10, 95)),
        _leaf("Outerwear › Coats", "parka, trench coat, puffer jacket", "hooded, double-breasted, quilted, "
              "water-repellent", (60, 380)),
        _leaf("Knitwear › Jumpers", "crew-neck jumper, cardigan, turtleneck", "merino, cable-knit, lambswool, "
              "cotton", (30, 150)),
    )),
    Department("Electronics", ("Voltra", "Sonique", "Pixelon", "Arcwave", "Nimbus", "Corely"),
               ("refurbished", "pro", "budget", "kids'", "travel"), (
        _leaf("Audio › Headphones", "over-ear headphones, wireless earbuds, on-ear headphones", "noise-cancelling, "
              "studio, sport, foldable", (25, 380)),
        _leaf("Audio › Speakers", "Bluetooth speaker, soundbar, bookshelf speaker pair", "portable, waterproof, "
              "smart, compact", (30, 450)),
        _leaf("Computers › Laptops", "laptop, ultrabook, 2-in-1 laptop", "13-inch, 14-inch, 16-inch, gaming",
              (350, 2400), "8 GB RAM, 16 GB RAM, 32 GB RAM"),
        _leaf("Computers › Keyboards", "mechanical keyboard, wireless keyboard, compact keyboard",
              "backlit, low-profile, ergonomic, quiet", (20, 180)),
        _leaf("Computers › Monitors", "monitor, curved monitor", "24-inch, 27-inch, 4K, 144 Hz", (120, 900),
              "matte, glossy"),
        _leaf("Phones › Cases", "phone case, wallet case, folio case", "shockproof, slim, clear, leather",
              (6, 45)),
        _leaf("Phones › Chargers", "USB-C charger, wall charger, car charger", "fast, 65 W, 30 W, "
              "travel", (12, 80), "one port, two ports, three ports"),
        _leaf("Cameras › Cameras", "mirrorless camera, action camera, instant camera",
              "compact, beginner, weather-sealed, retro", (80, 1800)),
        _leaf("Gaming › Controllers", "game controller, racing wheel, gaming headset", "wireless, pro, "
              "retro, RGB", (25, 300)),
        _leaf("Smart home › Devices", "smart plug, video doorbell, smart thermostat", "Wi-Fi, Zigbee, "
              "voice-controlled, app-controlled", (15, 250), "single, two-pack, four-pack"),
    )),
    Department("Garden", ("Greenhaven", "Thornfield", "Meadowsweet", "Rootwise", "Sunplot"),
               ("pro", "budget", "compact", "premium", "allotment"), (
        _leaf("Tools › Hand tools", "pruning shears, loppers, hedge shears", "bypass, anvil, ratchet, "
              "telescopic", (8, 70), "small, medium, large"),
        _leaf("Watering › Hoses", "garden hose, hose reel, soaker hose", "expandable, 25-metre, kink-free, "
              "heavy-duty", (9, 90)),
        _leaf("Plants › Houseplants", "monstera, snake plant, fiddle-leaf fig", "potted, variegated, starter, "
              "air-purifying", (9, 85), "small, medium, large"),
        _leaf("Furniture › Garden seating", "garden bench, sun lounger, bistro set", "acacia, folding, weatherproof, "
              "rattan-effect", (60, 520)),
        _leaf("Barbecue › Grills", "charcoal grill, gas barbecue, kamado grill", "kettle-style, large, portable, "
              "compact", (45, 900)),
        _leaf("Lighting › Outdoor lights", "solar string lights, path light set, wall lantern", "solar, warm-white, "
              "motion-sensor, festoon", (10, 110)),
        _leaf("Pots › Planters", "planter, raised bed, window box", "terracotta, galvanised, self-watering, "
              "cedar", (10, 180)),
    )),
    Department("Toys & Games", ("Playworth", "Bramble & Bee", "Tinker Lane", "Kiddo", "Questly"),
               ("toddler", "junior", "teen", "family", "travel"), (
        _leaf("Building › Construction sets", "construction set, marble run, magnetic tiles set", "100-piece, "
              "500-piece, starter, creative", (15, 120)),
        _leaf("Puzzles › Jigsaws", "jigsaw puzzle, 3D puzzle", "1000-piece, 500-piece, panoramic, wooden", (8, 45),
              "landscape, map, art, animals"),
        _leaf("Board games › Family games", "board game, card game, dice game", "strategy, cooperative, party, "
              "trivia", (10, 65), "classic edition, travel edition, deluxe edition"),
        _leaf("Plush › Soft toys", "teddy bear, plush rabbit, plush dinosaur", "cuddly, giant, organic, "
              "weighted", (8, 60)),
        _leaf("Outdoor play › Ride-ons", "kick scooter, balance bike, ride-on car", "foldable, three-wheel, "
              "adjustable, light-up", (25, 160)),
        _leaf("Crafts › Art sets", "watercolour set, colouring pencil set, modelling clay kit", "beginner, "
              "professional, 48-piece, washable", (7, 55)),
    )),
    Department("Beauty", ("Lumière", "Velvetine", "Purely", "Saltwater", "Amberly"),
               ("men's", "travel-size", "organic", "luxury", "sensitive"), (
        _leaf("Skincare › Moisturisers", "day cream, night cream, face serum", "hydrating, anti-ageing, vitamin C, "
              "fragrance-free", (8, 75), "30 ml, 50 ml, 100 ml"),
        _leaf("Hair › Shampoo", "shampoo, conditioner, hair mask", "volumising, repairing, anti-dandruff, "
              "sulphate-free", (5, 35), "250 ml, 400 ml, 1 litre"),
        _leaf("Makeup › Lips", "lipstick, lip gloss, lip liner", "matte, satin, long-wear, tinted", (6, 40),
              "nude, rose, berry, scarlet, coral pink"),
        _leaf("Fragrance › Perfume", "eau de parfum, eau de toilette, body mist", "floral, woody, citrus, amber",
              (15, 140), "30 ml, 50 ml, 100 ml"),
        _leaf("Bath › Body care", "body lotion, shower gel, bath salts", "shea butter, lavender, exfoliating, "
              "unscented", (4, 30), "200 ml, 500 ml"),
    )),
    Department("Pets", ("Pawsome", "Tailwind", "Furrow", "Whiskerly"),
               ("puppy", "senior", "premium", "travel", "eco"), (
        _leaf("Dogs › Walking", "dog lead, dog harness, dog collar", "reflective, padded, adjustable, waterproof",
              (8, 55)),
        _leaf("Dogs › Beds", "dog bed, dog crate mat", "orthopaedic, donut, washable, raised", (20, 140),
              "small, medium, large"),
        _leaf("Cats › Furniture", "cat scratching post, cat tree, cat hammock", "sisal, multi-level, wall-mounted, "
              "compact", (15, 160)),
        _leaf("Cats › Toys", "cat teaser wand, catnip mouse set, cat tunnel", "feather, crinkle, interactive, "
              "collapsible", (4, 30)),
        _leaf("Fish › Aquariums", "aquarium, aquarium filter, aquarium heater", "nano, 60-litre, silent, "
              "tropical", (15, 300), "basic, starter kit"),
    )),
    Department("Office", ("Inkwell", "Deskcraft", "Papeterie", "Clarion"),
               ("premium", "budget", "eco", "bulk", "school"), (
        _leaf("Stationery › Notebooks", "notebook, planner, sketchbook", "dotted, lined, A5, hardcover", (4, 35)),
        _leaf("Stationery › Pens", "fountain pen, gel pen set, fineliner set", "refillable, fine, medium, "
              "quick-dry", (3, 90), "black ink, blue ink, assorted colours"),
        _leaf("Desk › Organisers", "desk organiser, monitor stand, document tray", "bamboo, mesh, "
              "stackable, felt", (9, 70)),
        _leaf("Furniture › Office chairs", "office chair, kneeling chair, task chair", "ergonomic, mesh-back, "
              "height-adjustable, executive", (80, 700)),
        _leaf("Printing › Paper", "printer paper ream, photo paper pack, card stock pack", "A4, 80 gsm, glossy, "
              "recycled", (3, 40), "100 sheets, 500 sheets, 2500 sheets"),
    )),
)


def dress(*, seed: int, leaf_root: np.ndarray, n_roots: int, item_leaf: np.ndarray, item_rank: np.ndarray,
          item_category: np.ndarray) -> tuple[dict[int, str], pd.DataFrame]:
    """Category paths and item attributes for a synthetic world.

    leaf_root: (n_leaves,) root index of each leaf; item_leaf / item_rank: each item's leaf and popularity rank
    inside it (ranks 0..size-1 per leaf); item_category: each item's latest category as a leaf index (an item
    may have moved to another leaf; its name stays that of the leaf it was made for).
    Returns ({leaf or root index in the world's category order (leaves 0..L-1, roots L..): path},
    DataFrame(name, category, price, brand, colour) in item order).
    """
    rng = np.random.default_rng([seed, 0x4E414D45])  # its own stream: the simulation's draws are untouched
    n_leaves = len(leaf_root)
    # Roots with more leaves get departments with more leaf kinds (ties broken by the seed), so few kinds repeat.
    leaves_per_root = np.bincount(leaf_root, minlength=n_roots)
    roots = np.lexsort((rng.random(n_roots), -leaves_per_root))
    kinds = np.array([len(d.leaves) for d in DEPARTMENTS])
    departments = np.lexsort((rng.random(len(DEPARTMENTS)), -kinds))
    root_dept = np.empty(n_roots, np.int64)
    root_dept[roots] = departments[np.arange(n_roots) % len(DEPARTMENTS)]
    root_names = []
    for r in range(n_roots):
        dept, repeat = DEPARTMENTS[root_dept[r]].name, int(np.flatnonzero(roots == r)[0]) // len(DEPARTMENTS)
        root_names.append(dept if repeat == 0 else _qualified_root(dept, repeat))
    # Leaves: the k-th leaf of a root takes its department's leaf kinds in turn from a seeded offset.
    offset = rng.integers(0, 1 << 16, n_roots)
    seen_in_root = np.zeros(n_roots, np.int64)
    editions: dict[tuple[int, int], int] = {}
    leaf_kind, leaf_qualifier, paths = [], [], {}
    for leaf in range(n_leaves):
        root = leaf_root[leaf]
        dept = DEPARTMENTS[root_dept[root]]
        kind = int((offset[root] + seen_in_root[root]) % len(dept.leaves))
        seen_in_root[root] += 1
        edition = editions.get((root_dept[root], kind), 0)
        editions[(root_dept[root], kind)] = edition + 1
        qualifier = _leaf_qualifier(dept, edition)
        spec = dept.leaves[kind]
        *middle, last = spec.path.split(SEP)
        last = last if not qualifier else f"{qualifier} {last[0].lower()}{last[1:]}"
        paths[leaf] = SEP.join([root_names[root], *middle, _capital(last)])
        leaf_kind.append(spec)
        leaf_qualifier.append(qualifier)
    for r in range(n_roots):
        paths[n_leaves + r] = root_names[r]
    n = len(item_leaf)
    names, prices, brands, colours = [None] * n, [None] * n, [None] * n, [None] * n
    u_price, u_brand, u_cents = rng.random(n), rng.random(n), rng.integers(0, 4, n)
    combos_by_leaf = {}
    for i in range(n):
        leaf = int(item_leaf[i])
        spec, qualifier = leaf_kind[leaf], leaf_qualifier[leaf]
        dept = DEPARTMENTS[root_dept[leaf_root[leaf]]]
        variants = spec.variants or COLOURS
        size = len(spec.adjectives) * len(spec.nouns) * len(variants)
        if leaf not in combos_by_leaf:
            combos_by_leaf[leaf] = rng.permutation(size)
        rank = int(item_rank[i])
        combo, block = int(combos_by_leaf[leaf][rank % size]), rank // size
        adjective = spec.adjectives[combo % len(spec.adjectives)]
        noun = spec.nouns[(combo // len(spec.adjectives)) % len(spec.nouns)]
        variant = variants[combo // (len(spec.adjectives) * len(spec.nouns))]
        if block == 0:
            brand = dept.brands[int(u_brand[i] * len(dept.brands))]
            words = [qualifier, adjective, noun]
        else:  # the plain combinations are used up: the brand joins the name, then a model number
            brand = dept.brands[(block - 1) % len(dept.brands)]
            words = [brand, qualifier, adjective, noun]
        name = _capital(" ".join(w for w in words if w)) + f", {variant}"
        model = (block - 1) // len(dept.brands) + 1 if block else 1
        names[i] = name if model == 1 else f"{name}, model {model}"
        brands[i] = brand
        colours[i] = variant if spec.variants is None else None
        lo, hi = spec.price
        whole = max(1, int(lo * (hi / lo) ** u_price[i]))
        prices[i] = f"{whole}.{('99', '90', '00', '50')[u_cents[i]]}"
    category = [paths[int(c)] for c in item_category]
    table = pd.DataFrame({"name": names, "category": category, "price": prices, "brand": brands, "colour": colours},
                         dtype="string")
    return paths, table


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _leaf_qualifier(dept: Department, edition: int) -> str:
    if edition == 0:
        return ""
    if edition <= len(dept.qualifiers):
        return dept.qualifiers[edition - 1]
    return f"series {edition + 1}"


def _qualified_root(name: str, repeat: int) -> str:
    if repeat <= len(ROOT_QUALIFIERS):
        return f"{ROOT_QUALIFIERS[repeat - 1]} {name[0].lower()}{name[1:]}"
    return f"{name} {repeat + 1}"
