"""Run prunegate's measurements and BBQ scoring on a remote device.

- :mod:`gate.device.ssh`: the transport (system OpenSSH client: ``ssh`` and ``sftp`` through ``subprocess``).
- :mod:`gate.runtime.device_runner`: the script that runs on the device (numpy + onnxruntime + stdlib).
- :mod:`gate.device.remote`: the host side: copy artifacts, score BBQ and run the benchmark child there.
- :mod:`gate.device.gate_steps`: :class:`DeviceTarget`, the device behind the one interface
  :class:`gate.target.ExecutionTarget` that the pipeline's stages call.
- :mod:`gate.device.arm64_parity`: an emulated arm64 device (qemu user mode): the same bundle and artifact files,
  aarch64 ONNX Runtime, correctness only.
"""
