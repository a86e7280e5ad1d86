"""``cozoo.co``: continual layers, API-compatible with ``continual-inference``.

``import continual as co`` becomes ``from cozoo import co``.
"""

from . import __about__, compiled, convert, explicit_state, export, flops, logging, onnx, utils
from .attention import RetroactiveMultiheadAttention, SingleOutputMultiheadAttention
from .closure import Add, Constant, Identity, Lambda, Multiply, One, Zero
from .compiled import CompiledStep, compile_step
from .container import (
    Broadcast,
    BroadcastReduce,
    Conditional,
    Parallel,
    ParallelDispatch,
    Reduce,
    Sequential,
)
from .conv import Conv1d, Conv2d, Conv3d
from .convert import continual, forward_stepping
from .delay import Delay, Skip
from .fuse import fuse_batch_norm
from .linear import Linear
from .module import CallMode, CoModule, StepShapeError, call_mode
from .pooling import (
    AdaptiveAvgPool2d,
    AdaptiveAvgPool3d,
    AdaptiveMaxPool2d,
    AdaptiveMaxPool3d,
    AvgPool1d,
    AvgPool2d,
    AvgPool3d,
    MaxPool1d,
    MaxPool2d,
    MaxPool3d,
    SpatialMean,
)
from .positional_encoding import RecyclingPositionalEncoding
from .residual import Residual
from .rnn import GRU, LSTM, RNN
from .shape import Reshape
from .state_dicts import PaddingMode, flat_state_dict, load_state_dict, state_dict
from .transformer import (
    MhaType,
    RegularTransformerEncoderLayer,
    RetroactiveTransformerEncoderLayer,
    SingleOutputTransformerEncoderLayer,
    TransformerEncoder,
    TransformerEncoderLayerFactory,
)

flops.register_ptflops()

__all__ = [
    "MhaType",
    "RegularTransformerEncoderLayer",
    "RetroactiveTransformerEncoderLayer",
    "SingleOutputTransformerEncoderLayer",
    "TransformerEncoder",
    "TransformerEncoderLayerFactory",
    "RetroactiveMultiheadAttention",
    "SingleOutputMultiheadAttention",
    "RecyclingPositionalEncoding",
    "GRU",
    "LSTM",
    "RNN",
    "AdaptiveAvgPool2d",
    "AdaptiveAvgPool3d",
    "AdaptiveMaxPool2d",
    "AdaptiveMaxPool3d",
    "Add",
    "AvgPool1d",
    "AvgPool2d",
    "AvgPool3d",
    "Broadcast",
    "BroadcastReduce",
    "CallMode",
    "CoModule",
    "CompiledStep",
    "Conditional",
    "Constant",
    "Conv1d",
    "Conv2d",
    "Conv3d",
    "Delay",
    "Identity",
    "Lambda",
    "Linear",
    "MaxPool1d",
    "MaxPool2d",
    "MaxPool3d",
    "Multiply",
    "One",
    "PaddingMode",
    "Parallel",
    "ParallelDispatch",
    "Reduce",
    "Reshape",
    "Residual",
    "Sequential",
    "Skip",
    "SpatialMean",
    "StepShapeError",
    "Zero",
    "call_mode",
    "compile_step",
    "compiled",
    "continual",
    "convert",
    "explicit_state",
    "export",
    "flops",
    "flat_state_dict",
    "forward_stepping",
    "fuse_batch_norm",
    "load_state_dict",
    "logging",
    "onnx",
    "state_dict",
    "utils",
    "__about__",
]
