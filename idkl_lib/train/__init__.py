"""Training: the loop (:mod:`~idkl_lib.train.loop`), one epoch (:mod:`~idkl_lib.train.epoch`), the checks around it
(:mod:`~idkl_lib.train.checks`), multi-process training (:mod:`~idkl_lib.train.distributed`), TensorBoard logging
(:mod:`~idkl_lib.train.tensorboard`) and the command line (:mod:`~idkl_lib.train.cli`)::

    python -m idkl_lib.train --dataset sysu --data-root /data/SYSU-MM01 --out-dir runs/sysu
    torchrun --nproc_per_node 2 -m idkl_lib.train ...
"""

from idkl_lib.train.checks import NonFiniteLossError
from idkl_lib.train.loop import TrainResult, build_loader, evaluate_model, load_dataset, lr_factor, train

__all__ = ["NonFiniteLossError", "TrainResult", "build_loader", "evaluate_model", "load_dataset", "lr_factor", "train"]
