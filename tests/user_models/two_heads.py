"""A model with two outputs: class logits and a coarse segmentation map, returned as a dict."""

import torch.nn as nn
import torch.nn.functional as F


class ClassifyAndSegment(nn.Module):
    def __init__(self, num_classes=5, seg_classes=3):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, 2, 1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 32, 3, 2, 1), nn.BatchNorm2d(32), nn.ReLU(),
        )
        self.cls_head = nn.Linear(32, num_classes)
        self.seg_head = nn.Conv2d(32, seg_classes, 1)

    def forward(self, x):
        f = self.features(x)
        logits = self.cls_head(F.adaptive_avg_pool2d(f, 1).reshape(f.shape[0], -1))
        mask = self.seg_head(f)
        return {"logits": logits, "mask": mask}


def build(num_classes=5, seg_classes=3):
    return ClassifyAndSegment(num_classes, seg_classes)
