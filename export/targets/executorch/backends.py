"""ExecuTorch delegates beyond XNNPACK: Vulkan (Android GPUs) and Core ML (Apple devices).

``--backend vulkan`` hands what ``VulkanPartitioner`` takes to the Vulkan
delegate; ``--backend coreml`` hands what ``CoreMLPartitioner`` takes to Core
ML. Both lower here (the partitioners and their compile steps are pure
Python plus coremltools), so the ``.pte`` and its delegation coverage (ops
and MACs on the accelerator vs the portable CPU fallback, in the manifest)
are produced on any host. Running one needs the engine: the runtime side
(:mod:`mobexport.devices.runtimes.executorch`) says "cannot run here: needs
..." where it is missing, not a crash.
"""

from __future__ import annotations

import importlib

from mobexport.errors import TargetOptionError, first_line

# backend -> (partitioner module, partitioner class)
DELEGATES = {
    "vulkan": ("executorch.backends.vulkan.partitioner.vulkan_partitioner", "VulkanPartitioner"),
    "coreml": ("executorch.backends.apple.coreml.partition", "CoreMLPartitioner"),
}


def partitioner_for(backend: str):
    """The delegate's partitioner; a one-line error naming the missing piece when this ExecuTorch lacks it."""
    module_name, class_name = DELEGATES[backend]
    try:
        partitioner = getattr(importlib.import_module(module_name), class_name)
    except Exception as exc:  # ImportError, or a delegate whose own dependencies fail to load
        raise TargetOptionError(f"--backend {backend}: this ExecuTorch build cannot lower to {class_name[:-11]} "
                                f"({first_line(exc, 120, with_type=True)})",
                                "install an executorch build that includes the delegate, or use --backend xnnpack") \
            from None
    return partitioner()
