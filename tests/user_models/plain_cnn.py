"""A plain CNN as a user writes one: conv-BN-ReLU blocks (with and without conv bias), a depthwise stage, a head."""

import torch.nn as nn


def conv_bn(cin, cout, stride=1, groups=1, bias=False):
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1, groups=groups, bias=bias),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class SmallNet(nn.Module):
    def __init__(self, num_classes=10, width=16):
        super().__init__()
        self.stem = conv_bn(3, width, stride=2)
        self.block1 = conv_bn(width, width * 2, stride=2, bias=True)
        self.dw = conv_bn(width * 2, width * 2, groups=width * 2)
        self.pw = nn.Sequential(nn.Conv2d(width * 2, width * 4, 1), nn.BatchNorm2d(width * 4), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width * 4, num_classes)

    def forward(self, x):
        x = self.stem(x)
        x = self.block1(x)
        x = self.pw(self.dw(x))
        x = self.pool(x).flatten(1)
        return self.fc(x)


def build(num_classes=10):
    return SmallNet(num_classes)
