"""Released weights: the catalog of the checkpoints the papers' authors published, and the tools that fetch,
import and verify them under the data root (``<data-root>/weights/<model>/<file>``).

``catalog`` (the entries), ``locate`` (the file a suite's ``weights:`` names, and its hash), ``store`` (paths,
records, atomic installs), ``download`` (HTTP with resume), ``fitting`` (the strict fit of a file to its model),
``commands`` (what ``python -m harness weights`` runs), ``cli`` (what it prints).
"""

from harness.weights.catalog import (CATALOG_PATH, Catalog, CatalogError, WeightsEntry, active_catalog, load_catalog,
                                     stored_path, weights_dir)

__all__ = ["CATALOG_PATH", "Catalog", "CatalogError", "WeightsEntry", "active_catalog", "load_catalog", "stored_path",
           "weights_dir"]
