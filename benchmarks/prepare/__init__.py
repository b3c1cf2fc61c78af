"""Data preparation from the public releases (``sslbench prepare``): left atrium (nrrd), NIH Pancreas-CT
(DICOM + NIfTI) in the MC-Net+ and CoraNet protocols, MSD Task06 lung and any nnU-Net raw dataset.

Modules: ``readers`` (files -> (X, Y, Z) volumes with geometry), ``steps`` (clip, resample, crop,
normalise), ``recipes`` / ``pancreas`` (one recipe per dataset), ``manifest``, ``run`` (the resumable driver).
"""

from benchmarks.prepare.run import RECIPES, Summary, get_recipe, parse_options, prepare_dataset

__all__ = ["RECIPES", "Summary", "get_recipe", "parse_options", "prepare_dataset"]
