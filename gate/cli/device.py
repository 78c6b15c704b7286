"""Command-line pieces for running on real Arm: ``prunegate check --device ssh://...`` options, and the
``prunegate parity-arm64`` command (the artifact under ONNX Runtime's aarch64 build, emulated, versus the host).
"""

from __future__ import annotations

import inspect
import json
import sys
from pathlib import Path

import click
import rich_click

from gate.cli._help import TOOL_CODES, exit_codes_help
from gate.device.ssh import SshOptions
from gate.device import arm64_parity
from gate.runtime.errors import ExitCode, InputError

_SSH = SshOptions()
_PARITY = inspect.signature(arm64_parity.run_parity).parameters  # --atol/--rtol default to run_parity's

_DEVICE_OPTIONS = [
    click.option("--device", "device", metavar="URL", default=None, envvar="PRUNEGATE_DEVICE", show_envvar=True,
                 help="Measure and score BBQ on a remote device instead of this host: ssh://user@host[:port]. The "
                      "device needs python3, numpy and onnxruntime; artifacts are copied once (files it already has "
                      "with the same SHA-256 are skipped). Default: the profile's 'device' field, else this host; "
                      "'local' forces this host."),
    click.option("--device-identity", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="FILE",
                 help="SSH private key for the device (IdentityFile). Default: ssh-agent and ssh's default keys."),
    click.option("--device-known-hosts", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="FILE",
                 help="known_hosts file to check the device's host key against (default: ~/.ssh/known_hosts)."),
    click.option("--device-trust-new-host", is_flag=True,
                 help="Trust an unknown device host key on first use and record it (StrictHostKeyChecking=accept-new); "
                      "a changed key is still refused. Default: strict checking."),
    click.option("--device-python", default=_SSH.python, show_default=True, metavar="PATH",
                 help="Python interpreter on the device (must import numpy and onnxruntime)."),
    click.option("--device-dir", default=_SSH.remote_dir, show_default=True, metavar="DIR",
                 help="Working directory on the device (relative to the login's home, or absolute)."),
    click.option("--device-keep", is_flag=True,
                 help="Keep the copied artifacts on the device after the run (later runs skip identical files). "
                      "Default: remove what this run copied."),
    click.option("--device-timeout", default=_SSH.command_timeout_s, show_default=True, type=click.FloatRange(min=1), metavar="S",
                 help="Wall-clock limit of one remote command (scoring one variant, one benchmark process), seconds."),
    click.option("--device-connect-timeout", default=_SSH.connect_timeout_s, show_default=True, type=click.FloatRange(min=1), metavar="S",
                 help="SSH connection timeout (ConnectTimeout), seconds."),
]


def device_click_options(f):
    """Decorator adding the ``--device*`` options to ``prunegate check``."""
    for option in reversed(_DEVICE_OPTIONS):
        f = option(f)
    return f


def device_options_from_cli(kw: dict) -> tuple[str | None, SshOptions]:
    """Pop the ``--device*`` keys from click's keyword arguments (missing keys take their defaults).

    Returns:
        ``(device URL or None, SshOptions)``.
    """
    url = kw.pop("device", None)
    options = SshOptions(
        identity_file=kw.pop("device_identity", None),
        known_hosts=kw.pop("device_known_hosts", None),
        trust_new_host=bool(kw.pop("device_trust_new_host", False)),
        python=kw.pop("device_python", None) or _SSH.python,
        remote_dir=kw.pop("device_dir", None) or _SSH.remote_dir,
        keep=bool(kw.pop("device_keep", False)),
        command_timeout_s=float(kw.pop("device_timeout", None) or _SSH.command_timeout_s),
        connect_timeout_s=float(kw.pop("device_connect_timeout", None) or _SSH.connect_timeout_s),
    )
    return url, options


@click.command("parity-arm64", cls=rich_click.RichCommand, epilog=exit_codes_help(*TOOL_CODES, ExitCode.FAIL, PASS="parity holds", FAIL="parity fails"))
@click.option("--artifact", "artifact", required=True, type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="An exported artifact directory (model.onnx + external data), e.g. from the --work-dir cache.")
@click.option("--rootfs", required=True, type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="arm64 root filesystem prepared by scripts/prepare_arm64_rootfs.sh.")
@click.option("--tokenizer", "tokenizer_dir", default=None, type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="Tokenizer directory for the prompts (default: the artifact directory, where the export saves it).")
@click.option("--prompts", "prompts_file", default=None, type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Prompts, one per line (default: a fixed built-in set of 8).")
@click.option("--atol", default=_PARITY["atol"].default, show_default=True, type=click.FloatRange(min=0), help="Absolute logit tolerance.")
@click.option("--rtol", default=_PARITY["rtol"].default, show_default=True, type=click.FloatRange(min=0),
              help="Tolerance relative to the largest |host logit|.")
@click.option("--out", "out_path", default=None, type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Also write the result JSON here (atomically).")
def parity_arm64_cmd(artifact, rootfs, tokenizer_dir, prompts_file, atol, rtol, out_path) -> None:
    """Run ARTIFACT on ONNX Runtime's aarch64 build under qemu user-mode emulation and compare with this host.

    Compares the full logits of a fixed set of prompts (max |difference|, argmax agreement at every position).
    Emulated: correctness only; no timing under emulation is measured or reported. Prepare the root filesystem
    once with `sudo scripts/prepare_arm64_rootfs.sh DIR`.
    """
    from gate.device.arm64_parity import DEFAULT_PROMPTS, run_parity
    from gate.report.build import write_json_atomic

    prompts = DEFAULT_PROMPTS
    if prompts_file is not None:
        if not prompts_file.is_file():
            raise InputError(f"--prompts {prompts_file}: no such file; give a text file with one prompt per line")
        prompts = tuple(line for line in prompts_file.read_text(encoding="utf-8").splitlines() if line.strip())
        if not prompts:
            raise InputError(f"--prompts {prompts_file}: no non-empty line; give one prompt per line")
    result = run_parity(artifact, rootfs, prompts=prompts, tokenizer_dir=tokenizer_dir, atol=atol, rtol=rtol,
                        log=lambda s: click.echo(f"· {s}", err=True))
    if out_path:
        write_json_atomic(out_path, result)
    click.echo(json.dumps(result, indent=2))
    sys.exit(ExitCode.PASS if result["passed"] else ExitCode.FAIL)
