"""`torch.nn.parallel`'s single-process face: with one device, data_parallel is the module's own call.

Data parallelism over several processes is `lamina.distributed` (MPI).
"""


def data_parallel(module, inputs, device_ids=None, output_device=None, dim=0, module_kwargs=None):
    inputs = inputs if isinstance(inputs, tuple) else (inputs,)
    return module(*inputs, **(module_kwargs or {}))


__all__ = ["data_parallel"]
