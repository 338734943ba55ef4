"""The IDKL network: dual-tail ResNet backbone, IN-guided purifier, BNNecks, classifiers and modality heads."""

from .backbone import DualTailResNet, ResNetTail, imagenet_checkpoint_path, load_imagenet_state_dict
from .heads import BNNeck, GeM, ModalityDiscriminator, gem
from .idkl import IDKLModel, IDKLOutput, build_model
from .purifier import GatingNet, InformationPurifier, PurifierMaps

__all__ = [
    "BNNeck",
    "DualTailResNet",
    "GatingNet",
    "GeM",
    "IDKLModel",
    "IDKLOutput",
    "InformationPurifier",
    "ModalityDiscriminator",
    "PurifierMaps",
    "ResNetTail",
    "build_model",
    "gem",
    "imagenet_checkpoint_path",
    "load_imagenet_state_dict",
]
