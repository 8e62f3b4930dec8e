"""Population analyses of recorded (or simulated) responses, after Stringer et al. 2019.

Entry points
------------
cvpca(data)                              cross-validated PCA spectrum and power-law exponent α
intrinsic_dimension(X, method=...)       graph-distance (Granata & Carnevale), TwoNN, correlation dimension
receptive_fields(ds, method="rrr"|"rwa") RFs by reduced-rank regression or response-weighted average
identify(data)                           1-NN identification of images across repeats
decode_category(ds, model=...)           cross-validated category decoding (class-balanced)
cluster_responses(data, method=...)      k-means / spectral biclustering scored by repeat agreement
spatial_decoding(ds)                     CNN on the cortical-position grid vs position-blind decoders
stringer_normalize(ds)                   Stringer's spontaneous-activity normalisation

Each accepts a dataset in the v1nb schema (:mod:`v1nb.data.schema`) where that makes sense and
plain arrays otherwise. torch and scikit-dimension (slow to import) are imported only by the
functions that need them.
"""

from v1nb.analysis.cvpca import CVPCAResult, cvpca, cvpca_spectrum, fit_power_law
from v1nb.analysis.decoding import (
    CategoryDecoding, Identification, category_trials, decode_category, identify, make_decoder, merge_classes,
)
from v1nb.analysis.dimension import GraphDistanceDimension, IntrinsicDimension, intrinsic_dimension
from v1nb.analysis.preprocess import stringer_normalize
from v1nb.analysis.receptive_fields import (
    ReducedRankRegression, image_features, receptive_fields, rf_centers, rrr_cross_validate,
)
from v1nb.analysis.response_clustering import ResponseClustering, cluster_responses, repeat_agreement
from v1nb.analysis.spatial import GridCNNDecoder, PositionGrid, SpatialDecoding, position_grid, spatial_decoding

__all__ = [
    "CVPCAResult", "CategoryDecoding", "GraphDistanceDimension", "GridCNNDecoder", "Identification",
    "IntrinsicDimension", "PositionGrid", "ReducedRankRegression", "ResponseClustering", "SpatialDecoding",
    "category_trials", "cluster_responses", "cvpca", "cvpca_spectrum", "decode_category", "fit_power_law",
    "identify", "image_features", "intrinsic_dimension", "make_decoder", "merge_classes", "position_grid",
    "receptive_fields", "repeat_agreement", "rf_centers", "rrr_cross_validate", "spatial_decoding",
    "stringer_normalize",
]
