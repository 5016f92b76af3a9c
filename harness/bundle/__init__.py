"""Result bundles: runs that travel between sites with their own proof.

``export`` writes runs into one content-addressed ``.tar.gz`` (``manifest.json`` with the SHA-256 of every member,
schema in ``schema/manifest-v1.json``); ``importer`` checks a bundle completely before filing its runs under
``<results>/imported/<site>/<run_id>/``; ``verify`` re-evaluates a run's checkpoint and compares its predictions
image by image with the recorded ones; ``formats`` writes the field's formats (Hugging Face model cards and
``.eval_results``, timm's results CSV, NeuroBench's metric JSON).
"""

from __future__ import annotations


class BundleError(ValueError):
    """A bundle, run or argument that cannot be used: one line naming the bundle member, file or flag."""
