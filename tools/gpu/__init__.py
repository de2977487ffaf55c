"""The GPU half of dfseg (docs/gpu.md): what ``make gpu-check`` and ``make gpu-kit`` run.

- :mod:`tools.gpu.layers`: dfseg's own Caffe layers (Interp, Upsample, ShuffleChannel), CUDA
  against CPU and a central-difference gradient check of the CUDA backward;
- :mod:`tools.gpu.checks`: the checks, one per process (layers, gradients, nets, ``caffe time``
  on the GPU, TensorRT);
- :mod:`tools.gpu.host`: what this machine has (GPU, CUDA Caffe, TensorRT, PyTorch) and the
  runner of every check within a time budget, the GPU kit's run included;
- :mod:`tools.gpu.kit_build`: the GPU kit, a folder to copy to any CUDA machine;
- ``tools/gpu/kit/``: the kit's own ``run.py`` and ``gpu_kit_core.py``, copied into it as they
  are -- data here, not modules of dfseg: they import only the standard library, NumPy and
  torch, and run where dfseg is not.

The commands are ``python -m tools.gpu_check``, ``tools.gpu_runs`` and ``tools.gpu_kit``.
"""
__all__ = ["checks", "host", "kit_build", "layers"]
