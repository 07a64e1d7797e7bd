"""srblock: the Squeeze-and-Remember block for convolutional networks."""

from . import startup  # noqa: F401, I001  (first: its clock starts before torch is imported)
from importlib.metadata import PackageNotFoundError, version

from . import (
    models,  # noqa: F401  (importing it registers the zoo)
    timm_models,  # noqa: F401  (and registers it with timm, as srblock_<name>)
)
from .block import SqueezeRemember
from .fit import fit
from .insert import add_sr, remove_sr, sr_blocks, sr_bypassed
from .stages import stage_names
from .models import init_weights
from .params import count_params, sr_param_count
from .factory import create_model
from .registry import list_models, register_model
from .spec import SRSpec

try:
    __version__ = version("srblock")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0+unknown"

__all__ = [
    "SRSpec",
    "SqueezeRemember",
    "add_sr",
    "count_params",
    "create_model",
    "fit",
    "init_weights",
    "list_models",
    "register_model",
    "remove_sr",
    "sr_blocks",
    "sr_bypassed",
    "sr_param_count",
    "stage_names",
]
