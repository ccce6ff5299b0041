"""gumbel-lite: extract effective subnetworks of random networks with Gumbel-softmax masks.

Reference implementation of Dupont et al., "Extracting Effective Subnetworks with
Gumbel-Softmax" (ICIP 2022)::

    import gumbel_lite as gl
    net = gl.models.conv6(num_classes=10)
    gl.mask_model(net, method="aslp", rescale="smart", signed_constant=True, tau=1.0)
    data = gl.CifarData("cifar10", device=gl.default_device(), augment=True)
    history = gl.train(net, data, epochs=100)
    small = gl.extract(net)          # plain nn.Module, mask and scale folded in
    gl.density(net)                  # global and per-layer kept fraction
"""

from . import models, reference, results, samplers
from .config import GRIDS, RunConfig, grid, paper_cell, paper_cells, smoke
from .data import CifarData, DatasetError, load_split, prepare
from .doctor import doctor
from .export import export_compact, extract, load_compact, to_pruned
from .masking import (
    METHODS,
    RESCALES,
    Density,
    MaskedWeight,
    density,
    deterministic_masks,
    mask_mode,
    mask_model,
    mask_statistics,
    masked_layers,
    parameter_groups,
)
from .reference import ReferenceRun, load_reference, reference_data, reference_run, train_reference
from .runner import append_jsonl, read_results, run, run_grid
from .samplers import SAMPLERS
from .train import History, default_device, device_name, evaluate, native_bf16, resolve_fast_path, seed_everything, train

__version__ = "0.1.0"

__all__ = [
    "CifarData",
    "DatasetError",
    "Density",
    "GRIDS",
    "History",
    "METHODS",
    "MaskedWeight",
    "RESCALES",
    "RunConfig",
    "SAMPLERS",
    "append_jsonl",
    "default_device",
    "device_name",
    "doctor",
    "density",
    "deterministic_masks",
    "evaluate",
    "export_compact",
    "extract",
    "grid",
    "load_compact",
    "load_split",
    "mask_mode",
    "mask_model",
    "mask_statistics",
    "masked_layers",
    "models",
    "native_bf16",
    "paper_cell",
    "paper_cells",
    "parameter_groups",
    "prepare",
    "read_results",
    "reference",
    "ReferenceRun",
    "load_reference",
    "reference_data",
    "reference_run",
    "train_reference",
    "resolve_fast_path",
    "run",
    "run_grid",
    "samplers",
    "seed_everything",
    "smoke",
    "results",
    "to_pruned",
    "train",
]
