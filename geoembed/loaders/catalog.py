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
    dequantization="int8 * per-pixel scale; water (landmask 0) and non-finite or zero scales are nodata",
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
)

PRODUCTS = {
    product.id: product for product in (AEF, TESSERA, CLAY, EARTH_INDEX, MAJOR_TOM, COPERNICUS_EMBED, PRESTO, ESD)
}


def product(product_id):
    """The catalog entry for an id; raises GeoEmbedError listing the valid ids."""
    if product_id not in PRODUCTS:
        valid = ", ".join(["auto", *PRODUCTS])
        raise GeoEmbedError(f"Unknown product '{product_id}'; valid PRODUCT values are: {valid}.")
    return PRODUCTS[product_id]
