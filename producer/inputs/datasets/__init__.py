"""Dataset loaders: official file formats, the bundled sample and hub downloads -> CONTRACT section 1 items.

Why: every source (sample, hub, local file, URL) goes through the same format loaders, so an item
looks the same whatever its origin.
"""

from producer.inputs.datasets.data_errors import DataError
from producer.inputs.datasets.sources import SOURCE_KINDS, DatasetSource, load_items, resolve_source

__all__ = ["DataError", "DatasetSource", "SOURCE_KINDS", "load_items", "resolve_source"]
