"""Run prunegate's measurements and BBQ scoring on a remote device.

- :mod:`gate.device.ssh`: the transport (system OpenSSH client: ``ssh`` and ``sftp`` through ``subprocess``).
- :mod:`gate.runtime.device_runner`: the script that runs on the device (numpy + onnxruntime + stdlib).
- :mod:`gate.device.remote`: the host side: copy artifacts, score BBQ and run the benchmark child there.
- :mod:`gate.device.gate_steps`: the small functions ``gate/pipeline.py`` calls to run its stages on the device.
"""
