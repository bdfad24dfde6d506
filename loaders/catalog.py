"""The product catalog: what each published embedding product is, in one place."""

import math
from dataclasses import dataclass

from .errors import GeoEmbedError


@dataclass(frozen=True)
class Product:
    id: str
    name: str
    kind: str  # "pixel" (a raster of vectors) or "patch" (one vector per chip)
    resolution_m: float  # None: from the file (the generic product)
    dims: int  # None: from the file
    dtype: str
    licence: str
    attribution: str
    years: tuple
    public_location: str
    dequantization: str
    bytes_per_vector: int = 0  # stored bytes of one vector (what storage and egress scale with)
    unit_vectors: bool = False  # every valid vector has length 1: means of them are re-normalised


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
    dequantization=(
        "((q / 127.5) ** 2) * sign(q); q = -128 is nodata in every band. Earth Engine exports and Major TOM's copy are "
        "float values, already de-quantised: used as they are (all-zero vectors, NaN and the file's noData are nodata)"
    ),
    bytes_per_vector=64,
    unit_vectors=True,
)

TESSERA = Product(
    id="tessera",
    name="Tessera (GeoTessera) annual embeddings",
    kind="pixel",
    resolution_m=10.0,
    dims=128,
    dtype="int8 + float32 per-pixel scale",
    licence="CC0-1.0 or CC-BY-4.0 (sources conflict; check the GeoTessera terms)",
    attribution="Tessera embeddings by the University of Cambridge (ucam-eo/geotessera).",
    years=tuple(range(2017, 2026)),
    public_location="https://data.source.coop/tessera/tessera/",
    dequantization=(
        "int8 * per-pixel scale; water (landmask 0) and non-finite or zero scales are nodata. GeoTIFF exports (float32) "
        "are used as they are, water masked with the tile's landmask when SOURCE holds it (else kept, with a warning)"
    ),
    bytes_per_vector=132,
)

CLAY = Product(
    id="clay",
    name="Clay embeddings (v0 Sentinel-2, v1.5 NAIP, v1.5 Sentinel-2)",
    kind="patch",
    resolution_m=5120.0,
    dims=768,
    dtype="float32",
    licence="ODC-BY (v0), CC-BY-4.0 (v1.5)",
    attribution="Clay Foundation model embeddings (source.coop/clay).",
    years=tuple(range(2018, 2025)),
    public_location="https://data.source.coop/clay/",
    dequantization="none (float32)",
    bytes_per_vector=3072,
)

EARTH_INDEX = Product(
    id="earth-index",
    name="Earth Index embeddings (Earth Genome, SoftCon ViT-S/14)",
    kind="patch",
    resolution_m=320.0,
    dims=384,
    dtype="float32",
    licence="CC-BY-4.0",
    attribution="Earth Index embeddings by Earth Genome.",
    years=(2024,),
    public_location="https://data.source.coop/earthgenome/earthindexembeddings/",
    dequantization="none (float32)",
    bytes_per_vector=1536,
)

MAJOR_TOM = Product(
    id="major-tom",
    name="Major TOM embeddings (SSL4EO, DINOv2, SigLIP)",
    kind="patch",
    resolution_m=2240.0,
    dims=2048,
    dtype="float32",
    licence="CC-BY-SA-4.0",
    attribution="Major TOM embeddings by ESA Phi-lab.",
    years=tuple(range(2017, 2024)),
    public_location="https://huggingface.co/Major-TOM",
    dequantization="none (float32)",
    bytes_per_vector=8192,
)

COPERNICUS_EMBED = Product(
    id="copernicus-embed",
    name="Copernicus-Embed (0.25 degree grid)",
    kind="pixel",
    resolution_m=27_830.0,
    dims=768,
    dtype="float32",
    licence="CC-BY-4.0",
    attribution="Copernicus-Embed by the Copernicus-FM team (zhu-xlab).",
    years=(),
    public_location="https://huggingface.co/datasets/wangyi111/Copernicus-Embed-025deg",
    dequantization="none (float32); all-zero vectors (mostly ocean) are nodata",
    bytes_per_vector=3072,
)

PRESTO = Product(
    id="presto",
    name="Presto embeddings, Togo (NASA Harvest)",
    kind="pixel",
    resolution_m=10.0,
    dims=128,
    dtype="uint16",
    licence="CC-BY-4.0",
    attribution="Presto embeddings for Togo by NASA Harvest.",
    years=(2019,),
    public_location="https://huggingface.co/datasets/izvonkov/Togo_Presto_Embeddings",
    dequantization="none published: raw uint16 values; all-zero vectors are nodata",
    bytes_per_vector=256,
)

ESD = Product(
    id="esd",
    name="Embedded Seamless Data (SDC30 EBD)",
    kind="pixel",
    resolution_m=30.0,
    dims=72,
    dtype="uint16 (12 monthly FSQ codes)",
    licence="CC-BY-4.0",
    attribution="Embedded Seamless Data (SDC30_EBD_V001).",
    years=tuple(range(2000, 2025)),
    public_location="https://data-starcloud.pcl.ac.cn/iearthdata/64",
    dequantization="FSQ codes, levels (8,8,8,5,5,5): level_k = (code // basis_k) % L_k, value = (level_k - L_k//2) / (L_k//2)",
    bytes_per_vector=26,
)

FROM_THE_FILE = "from the file"

GENERIC = Product(
    id="generic",
    name="Any other embedding raster (GeoTIFF, VRT or COG, one band per dimension)",
    kind="pixel",
    resolution_m=None,
    dims=None,
    dtype=f"{FROM_THE_FILE} (float: embedding values; integer: raw values)",
    licence="that of the file",
    attribution="Whoever produced the file.",
    years=(),
    public_location="",
    dequantization=(
        "none: float values are used as they are, integer values as raw numbers; all-zero vectors, NaN/inf and the "
        "file's noData are nodata"
    ),
)

PRODUCTS = {
    product.id: product for product in (AEF, TESSERA, CLAY, EARTH_INDEX, MAJOR_TOM, COPERNICUS_EMBED, PRESTO, ESD, GENERIC)
}


# Amazon S3 list prices (US East, 2026): Standard storage, first 50 TB, and data transfer out to the
# internet, first 10 TB per month. Stated in every cost output.
S3_STORAGE_USD_PER_GB_MONTH = 0.023
S3_EGRESS_USD_PER_GB = 0.09
PRICES_NOTE = "S3 Standard list prices, US East, 2026: $0.023 per GB-month stored, $0.09 per GB transferred out"


@dataclass(frozen=True)
class Cost:
    vectors: float
    gigabytes: float
    storage_usd_month: float
    egress_usd: float


def cost_for_area(product, area_m2):
    """What storing and downloading a product over an area costs: vectors x bytes per vector, at S3 prices.

    None for the generic product: its resolution and size per vector are those of each file."""
    if is_from_the_file(product):
        return None
    vectors = area_m2 / (product.resolution_m**2)
    gigabytes = vectors * product.bytes_per_vector / 1e9
    return Cost(vectors, gigabytes, gigabytes * S3_STORAGE_USD_PER_GB_MONTH, gigabytes * S3_EGRESS_USD_PER_GB)


def lonlat_area_m2(west, south, east, north):
    """Exact area on the WGS 84 ellipsoid of a lon/lat rectangle (edges along meridians and parallels)."""
    a, f = 6378137.0, 1 / 298.257223563
    e = math.sqrt(f * (2 - f))
    b2 = (a * (1 - f)) ** 2

    def zone_area(lat):  # area between the equator and a parallel, all the way round
        s = math.sin(math.radians(lat))
        return math.pi * b2 * (s / (1 - e * e * s * s) + math.log((1 + e * s) / (1 - e * s)) / (2 * e))

    south, north = max(-90.0, min(south, north)), min(90.0, max(south, north))
    width = min(abs(east - west), 360.0)
    return width / 360.0 * (zone_area(north) - zone_area(south))


def is_from_the_file(product):
    """True for the generic product, whose resolution, dimensions and years are whatever its file has."""
    return product.resolution_m is None


def dims_text(product):
    return FROM_THE_FILE if product.dims is None else str(product.dims)


def years_text(product):
    if is_from_the_file(product):
        return FROM_THE_FILE
    if not product.years:
        return "static (no year)"
    first, last = product.years[0], product.years[-1]
    return str(first) if first == last else f"{first}-{last}"


def has_unit_vectors(product_id):
    """True for products whose vectors are unit vectors (AEF and its Earth Engine exports, which load as aef)."""
    return product_id in PRODUCTS and PRODUCTS[product_id].unit_vectors


def product(product_id):
    """The catalog entry for an id; raises GeoEmbedError listing the valid ids."""
    if product_id not in PRODUCTS:
        valid = ", ".join(["auto", *PRODUCTS])
        raise GeoEmbedError(f"Unknown product '{product_id}'; valid PRODUCT values are: {valid}.")
    return PRODUCTS[product_id]
