"""The product catalog: what each published embedding product is, in one place."""

from dataclasses import dataclass

from .errors import GeoEmbedError


@dataclass(frozen=True)
class Product:
    id: str
    name: str
    kind: str  # "pixel" (a raster of vectors) or "patch" (one vector per chip)
    resolution_m: float
    dims: int
    dtype: str
    licence: str
    attribution: str
    years: tuple
    public_location: str
    dequantization: str


AEF = Product(
    id="aef",
    name="AlphaEarth Foundations Satellite Embedding V1 (annual)",
    kind="pixel",
    resolution_m=10.0,
    dims=64,
    dtype="int8",
    licence="CC-BY 4.0",
    attribution="The AlphaEarth Foundations Satellite Embedding dataset is produced by Google and Google DeepMind.",
    years=tuple(range(2017, 2026)),
    public_location="https://data.source.coop/tge-labs/aef/",
    dequantization="((q / 127.5) ** 2) * sign(q); q = -128 is nodata in every band",
)

PRODUCTS = {product.id: product for product in (AEF,)}


def product(product_id):
    """The catalog entry for an id; raises GeoEmbedError listing the valid ids."""
    if product_id not in PRODUCTS:
        valid = ", ".join(["auto", *PRODUCTS])
        raise GeoEmbedError(f"Unknown product '{product_id}'; valid PRODUCT values are: {valid}.")
    return PRODUCTS[product_id]
