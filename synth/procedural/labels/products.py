"""What a product is called and what is in it: invented brand names, product names and typical
nutrition per category."""

from __future__ import annotations

import numpy as np

from synth.errors import AssetError

_ONSETS = (
    "b",
    "c",
    "d",
    "f",
    "g",
    "k",
    "l",
    "m",
    "n",
    "p",
    "r",
    "s",
    "t",
    "v",
    "z",
    "br",
    "cr",
    "dr",
    "fl",
    "gr",
    "pr",
    "st",
    "tr",
    "ch",
    "sh",
)
_VOWELS = ("a", "e", "i", "o", "u", "a", "o", "e", "i", "io", "ea")
_CODAS = ("", "", "", "n", "r", "l", "s", "m", "x", "nd", "rt")

PRODUCTS: dict[str, tuple[str, ...]] = {
    "cereal": (
        "Crunchy Oats",
        "Honey Flakes",
        "Corn Flakes",
        "Cocoa Puffs",
        "Fruit Muesli",
        "Bran Flakes",
        "Granola Clusters",
        "Frosted Rings",
        "Multigrain Hoops",
        "Rice Crisps",
    ),
    "crackers": (
        "Sea Salt Crackers",
        "Cracked Pepper Thins",
        "Rosemary Crispbread",
        "Cheddar Crackers",
        "Rye Crispbread",
        "Water Biscuits",
        "Sesame Crackers",
    ),
    "pasta": ("Spaghetti", "Penne Rigate", "Fusilli", "Farfalle", "Linguine", "Rigatoni", "Tagliatelle"),
    "tea": (
        "Earl Grey Tea",
        "English Breakfast",
        "Green Tea",
        "Chamomile Infusion",
        "Peppermint Tea",
        "Rooibos Tea",
        "Jasmine Green Tea",
    ),
    "cake": (
        "Chocolate Cake Mix",
        "Vanilla Sponge Mix",
        "Lemon Drizzle Mix",
        "Brownie Mix",
        "Carrot Cake Mix",
        "Muffin Mix",
    ),
    "sugar": (
        "Granulated Sugar",
        "Caster Sugar",
        "Light Brown Sugar",
        "Icing Sugar",
        "Cane Sugar",
        "Demerara Sugar",
    ),
    "beans": (
        "Baked Beans",
        "Red Kidney Beans",
        "Cannellini Beans",
        "Black Beans",
        "Butter Beans",
        "Chickpeas",
    ),
    "corn": ("Sweet Corn", "Golden Sweetcorn", "Creamed Corn", "Corn Kernels"),
    "fish": ("Tuna Chunks", "Sardines", "Pink Salmon", "Mackerel Fillets", "Tuna in Olive Oil"),
    "soda": ("Cola", "Lemon Lime", "Orange Soda", "Ginger Ale", "Cream Soda", "Tonic Water"),
    "tomato_sauce": ("Chopped Tomatoes", "Tomato Passata", "Tomato Sauce", "Pizza Sauce", "Plum Tomatoes"),
    "water": ("Still Water", "Spring Water", "Sparkling Water", "Mineral Water"),
    "oil": ("Olive Oil", "Sunflower Oil", "Extra Virgin Olive Oil", "Rapeseed Oil", "Vegetable Oil"),
    "juice": ("Orange Juice", "Apple Juice", "Multivitamin Juice", "Pineapple Juice", "Grape Juice"),
    "vinegar": ("White Wine Vinegar", "Balsamic Vinegar", "Cider Vinegar", "Malt Vinegar"),
    "jam": ("Strawberry Jam", "Raspberry Jam", "Apricot Jam", "Blackcurrant Jam", "Orange Marmalade"),
    "honey": ("Pure Honey", "Wildflower Honey", "Clear Honey", "Acacia Honey", "Set Honey"),
    "spices": (
        "Ground Paprika",
        "Ground Cumin",
        "Black Pepper",
        "Mixed Herbs",
        "Ground Turmeric",
        "Chilli Flakes",
    ),
    "nuts": ("Roasted Peanuts", "Mixed Nuts", "Cashews", "Salted Almonds", "Pistachios"),
    "milk": ("Whole Milk", "Semi Skimmed Milk", "Skimmed Milk", "Oat Drink", "Organic Milk"),
    "chips": (
        "Ready Salted Crisps",
        "Salt & Vinegar Crisps",
        "Paprika Chips",
        "Sour Cream Chips",
        "Cheese & Onion Crisps",
        "Tortilla Chips",
    ),
    "candy": ("Fruit Gums", "Chewy Mints", "Jelly Beans", "Sour Worms", "Toffees", "Wine Gums"),
    "coffee": ("Ground Coffee", "Espresso Beans", "Medium Roast", "Dark Roast", "Decaf Coffee"),
    "rice": ("Basmati Rice", "Long Grain Rice", "Jasmine Rice", "Brown Rice", "Risotto Rice"),
    "flour": ("Plain Flour", "Self Raising Flour", "Bread Flour", "Wholemeal Flour", "Spelt Flour"),
    "toothpaste": ("Fresh Mint", "Whitening", "Sensitive", "Total Care", "Herbal Fresh", "Kids Strawberry"),
}

_QUALIFIERS = ("", "", "", "Organic ", "Classic ", "Premium ", "Family ")

# Typical nutrition per 100 g/ml: kcal, fat, saturates, carbohydrate, sugars, fibre, protein, salt.
NUTRITION: dict[str, tuple[float, ...]] = {
    "cereal": (375, 4, 1, 70, 18, 8, 9, 0.6),
    "crackers": (440, 12, 5, 70, 3, 4, 10, 1.5),
    "pasta": (355, 1.5, 0.3, 71, 3, 3, 12, 0.01),
    "tea": (1, 0, 0, 0.3, 0, 0, 0.1, 0),
    "cake": (400, 6, 2, 80, 45, 2, 5, 0.8),
    "sugar": (400, 0, 0, 100, 100, 0, 0, 0),
    "beans": (80, 0.5, 0.1, 12, 4, 4, 5, 0.6),
    "corn": (80, 1.2, 0.2, 14, 5, 3, 3, 0.3),
    "fish": (140, 5, 1, 0, 0, 0, 24, 1.0),
    "soda": (42, 0, 0, 10.6, 10.6, 0, 0, 0),
    "tomato_sauce": (30, 0.2, 0, 5, 4, 1, 1.3, 0.3),
    "water": (0, 0, 0, 0, 0, 0, 0, 0.01),
    "oil": (824, 91.6, 13, 0, 0, 0, 0, 0),
    "juice": (45, 0.1, 0, 10, 9, 0.2, 0.6, 0),
    "vinegar": (20, 0, 0, 0.5, 0.5, 0, 0.2, 0),
    "jam": (250, 0.1, 0, 60, 58, 1, 0.4, 0.05),
    "honey": (330, 0, 0, 82, 82, 0, 0.4, 0.01),
    "spices": (300, 10, 2, 50, 10, 30, 12, 0.1),
    "nuts": (600, 50, 8, 15, 5, 8, 25, 1.0),
    "milk": (64, 3.6, 2.3, 4.8, 4.8, 0, 3.4, 0.1),
    "chips": (530, 32, 3, 52, 1, 4, 6, 1.3),
    "candy": (340, 0.2, 0.1, 78, 60, 0, 5, 0.1),
    "coffee": (2, 0, 0, 0.3, 0, 0, 0.1, 0),
    "rice": (355, 1, 0.3, 78, 0.2, 1.5, 8, 0.01),
    "flour": (340, 1.3, 0.2, 70, 1.5, 3.5, 10, 0.01),
}
DRINKS = {"soda", "water", "oil", "juice", "vinegar", "milk"}


def _syllable(rng: np.random.Generator, coda_p: float) -> str:
    s = _ONSETS[rng.integers(len(_ONSETS))] + _VOWELS[rng.integers(len(_VOWELS))]
    if rng.random() < coda_p:
        s += _CODAS[rng.integers(len(_CODAS))]
    return s


def brand_name(rng: np.random.Generator) -> str:
    """A pronounceable invented brand of 4-9 letters, e.g. 'Velmora' or 'Kestril'."""
    while True:
        n = int(rng.choice([2, 2, 3]))
        word = "".join(_syllable(rng, 0.25 if i < n - 1 else 0.6) for i in range(n))
        if 4 <= len(word) <= 9:
            return word[:1].upper() + word[1:]


def product_name(rng: np.random.Generator, category: str) -> str:
    names = PRODUCTS.get(category)
    if not names:
        raise AssetError("labels", f"no product names for category '{category}'")
    return _QUALIFIERS[rng.integers(len(_QUALIFIERS))] + names[rng.integers(len(names))]


def sample_nutrition(rng: np.random.Generator, category: str) -> tuple[tuple[str, str], ...] | None:
    base = NUTRITION.get(category)
    if base is None:
        return None
    v = [x * rng.uniform(0.85, 1.15) for x in base]
    kcal = v[0]
    return (
        ("Energy", f"{kcal * 4.184:.0f} kJ / {kcal:.0f} kcal"),
        ("Fat", f"{v[1]:.1f} g"),
        ("  of which saturates", f"{min(v[2], v[1]):.1f} g"),
        ("Carbohydrate", f"{v[3]:.1f} g"),
        ("  of which sugars", f"{min(v[4], v[3]):.1f} g"),
        ("Fibre", f"{v[5]:.1f} g"),
        ("Protein", f"{v[6]:.1f} g"),
        ("Salt", f"{v[7]:.2f} g"),
    )
