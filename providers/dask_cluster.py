"""The CLUSTER and WORKERS parameters: run a block-wise algorithm on a Dask cluster (analysis/distributed/)."""

from qgis.core import QgsProcessingParameterNumber, QgsProcessingParameterString

from ..analysis.distributed.cluster import parse
from ..qgis_compat import NUMBER_INTEGER, PARAMETER_ADVANCED


def add_cluster_parameters(algorithm):
    cluster = QgsProcessingParameterString(
        "CLUSTER",
        algorithm.tr("Dask cluster: empty = in QGIS, 'local' = worker processes here, tcp://host:port = a scheduler"),
        defaultValue="",
        optional=True,
    )
    cluster.setFlags(cluster.flags() | PARAMETER_ADVANCED)
    algorithm.addParameter(cluster)
    workers = QgsProcessingParameterNumber(
        "WORKERS", algorithm.tr("Worker processes of CLUSTER=local (0 = one per core)"), NUMBER_INTEGER, 0, True, 0
    )
    workers.setFlags(workers.flags() | PARAMETER_ADVANCED)
    algorithm.addParameter(workers)


def cluster_settings(algorithm, parameters, context):
    """ClusterSettings of CLUSTER and WORKERS, or None to run in QGIS; a missing dask is said before any work."""
    text = algorithm.parameterAsString(parameters, "CLUSTER", context) if parameters.get("CLUSTER") else ""
    workers = algorithm.parameterAsInt(parameters, "WORKERS", context) if parameters.get("WORKERS") not in (None, "") else 0
    return parse(text, workers)
