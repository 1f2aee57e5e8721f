"""ExecuTorch delegates beyond XNNPACK: Vulkan (Android GPUs) and Core ML (Apple devices).

``--backend vulkan`` hands what ``VulkanPartitioner`` takes to the Vulkan
delegate; ``--backend coreml`` hands what ``CoreMLPartitioner`` takes to Core
ML. Both lower here (the partitioners and their compile steps are pure
Python plus coremltools), so the ``.pte`` and its delegation coverage (ops
and MACs on the accelerator vs the portable CPU fallback, in the manifest)
are produced on any host. Running one needs the engine: a runtime that lacks
the delegate gets "cannot run here: needs ..." from :func:`cannot_run_here`,
not a crash.
"""

from __future__ import annotations

from mobexport.errors import DeviceError, TargetOptionError

# backend -> (partitioner module, class, runtime backend id, what running it needs)
DELEGATES = {
    "vulkan": ("executorch.backends.vulkan.partitioner.vulkan_partitioner", "VulkanPartitioner", "VulkanBackend",
               "an Android GPU with Vulkan and an executor_runner built with -DEXECUTORCH_BUILD_VULKAN=ON"),
    "coreml": ("executorch.backends.apple.coreml.partition", "CoreMLPartitioner", "CoreMLBackend",
               "an Apple device (iOS or macOS) with an ExecuTorch runtime built with -DEXECUTORCH_BUILD_COREML=ON"),
}


def partitioner_for(backend: str):
    """The delegate's partitioner; a one-line error naming the missing piece when this ExecuTorch lacks it."""
    module_name, class_name, _, _ = DELEGATES[backend]
    try:
        import importlib

        module = importlib.import_module(module_name)
        partitioner = getattr(module, class_name)
    except Exception as exc:  # ImportError, or a delegate whose own dependencies fail to load
        raise TargetOptionError(f"--backend {backend}: this ExecuTorch build cannot lower to {class_name[:-11]} "
                                f"({type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''})",
                                "install an executorch build that includes the delegate, or use --backend xnnpack") \
            from None
    return partitioner()


def runtime_backend(backend: str | None) -> str | None:
    """The runtime's backend id a program delegated to ``backend`` needs (None for non-delegates)."""
    entry = DELEGATES.get(backend or "")
    return entry[2] if entry else None


def delegate_available_here(backend: str) -> bool:
    """Whether this host's ExecuTorch runtime has the delegate's backend registered."""
    try:
        from executorch.runtime import Runtime

        return bool(Runtime.get().backend_registry.is_available(DELEGATES[backend][2]))
    except Exception:
        return False


def cannot_run_here(backend: str, where: str) -> DeviceError:
    """The error for a delegated program on a device without its engine."""
    return DeviceError(f"cannot run here: a {backend}-delegated .pte needs {DELEGATES[backend][3]}; {where} has none",
                       "run it on such a device, or export with --backend xnnpack for this one")
