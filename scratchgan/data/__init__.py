"""Datasets (IDX files, lookup, download), pixel transforms and minibatching."""
from .datasets import DATASETS, Dataset, cache_dir, download_dataset, find_dataset_dir, load_dataset
from .identity import DataWarning, fingerprint, identify
from .folder import IMAGE_EXTENSIONS, load_image_folder, parse_dataset_spec
from .idx import DataError, read_idx, write_idx
from .images import load_images
from .loader import BatchLoader
from .transforms import binarize, flatten, from_tanh_range, to_float, to_tanh_range

__all__ = ["DATASETS", "Dataset", "DataError", "DataWarning", "fingerprint", "identify", "BatchLoader", "cache_dir", "download_dataset",
           "find_dataset_dir", "load_dataset", "IMAGE_EXTENSIONS", "load_image_folder",
           "parse_dataset_spec", "load_images", "read_idx", "write_idx", "binarize", "flatten",
           "from_tanh_range", "to_float", "to_tanh_range"]
