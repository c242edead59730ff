"""Small flax networks: muP MLPs and their training loop (``nets.mlp``), and a
network regressor for the cascade (``nets.regressor``)."""
from kcascade.nets.mlp import (MLP, Trained, check_net, evaluate, flops_per_row, init_params, lr_multipliers,
                               make_mlp, optimizer, run_steps, train, widen)
from kcascade.nets.regressor import NetFit, NetHyper, NetRegressor

__all__ = ["MLP", "Trained", "check_net", "evaluate", "flops_per_row", "init_params", "lr_multipliers", "make_mlp",
           "optimizer", "run_steps", "train", "widen", "NetFit", "NetHyper", "NetRegressor"]
