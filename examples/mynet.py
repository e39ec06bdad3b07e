"""The README's example network: dropout before the second BatchNorm (the variance shift), written as users do.

    python cli.py audit --model examples/mynet.py:make --input-shape 20 --threads 1 --fix recalibrate --save fixed.pt

``make(drop=0.5)`` takes PyTorch's DROP probability, as ``nn.Dropout`` does (keep = 1 − drop);
``--model-arg drop=0.2`` passes another one.
"""
import torch.nn as nn


def make(drop=0.5, width=64):
    """Linear → BN → ReLU → Dropout → Linear → BN → ReLU → Linear, on 20 input features."""
    return nn.Sequential(nn.Linear(20, width), nn.BatchNorm1d(width), nn.ReLU(), nn.Dropout(drop),
                         nn.Linear(width, width), nn.BatchNorm1d(width), nn.ReLU(), nn.Linear(width, 1))
