import pytest
import torch
import torch.nn as nn

from mobexport.export.macs import count_macs
from mobexport.export.trace import trace
from mobexport.models.spec import ModelSpec, ResolutionRange

SPEC = ModelSpec(name="probe", family="probe", default_resolution=64, reference_params=0, reference_macs=0,
                 checkpoint_format="none", resolutions=ResolutionRange(32, 256, 32))


class Probe(nn.Module):
    """Known MACs: conv 3->8 k3 s2, depthwise 8 k3, linear 8->5, one activation matmul."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, 2, 1, bias=False)
        self.dw = nn.Conv2d(8, 8, 3, 1, 1, groups=8)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        x = self.dw(self.conv(x)).relu()
        t = x.flatten(2)                      # [1, 8, HW]
        attn = (t.transpose(1, 2) @ t)        # [1, HW, HW], K = 8
        x = (t @ attn.softmax(-1)).mean(-1)   # [1, 8, HW],  K = HW
        return self.fc(x)


def expected(res):
    hw = (res // 2) ** 2
    return {
        "conv": 8 * hw * 3 * 9,
        "depthwise_conv": 8 * hw * 9,
        "linear": 5 * 8,
        "attention": hw * hw * 8 + 8 * hw * hw,
    }


@pytest.mark.parametrize("dynamic", [False, True])
def test_counts_each_category_exactly(dynamic):
    traced = trace(Probe(), SPEC, 64, dynamic=dynamic)
    for res in ([64, 96, 128] if dynamic else [64]):
        report = count_macs(traced.program, res)
        assert report.macs == expected(res)
        assert report.params == 3 * 8 * 9 + 8 * 9 + 8 + 8 * 5 + 5
        assert report.elementwise_ops > 0


def test_elementwise_is_not_counted_as_macs():
    traced = trace(Probe(), SPEC, 64)
    report = count_macs(traced.program, 64)
    assert report.total_macs == sum(expected(64).values())
