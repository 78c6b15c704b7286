"""Hardware profiles: the shipped TOML files, the published JSON Schema, the loader's errors, the CLI."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import jsonschema
import pytest

from gate.cli.main import main
from hardware_profiles import (PROFILE_DIR, HardwareProfile, ProfileError, known_execution_providers, known_profiles,
                               load_profile, load_profile_file, load_schema)

REQUIRED_DEVICES = {  # name: (arch, core_type)
    "host": ("native", "native"),
    "raspberry-pi-5": ("aarch64", "Cortex-A76"),
    "raspberry-pi-4": ("aarch64", "Cortex-A72"),
    "jetson-orin-nano": ("aarch64", "Cortex-A78AE"),
    "nxp-imx8m-plus": ("aarch64", "Cortex-A53"),
    "generic-arm64": ("aarch64", "any"),
}

PI5_TEXT = (PROFILE_DIR / "raspberry-pi-5.toml").read_text(encoding="utf-8")


def write_profile(tmp_path: Path, text: str, name: str = "raspberry-pi-5") -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def edited_pi5(tmp_path: Path, old: str, new: str) -> Path:
    assert PI5_TEXT.count(old) == 1, old
    return write_profile(tmp_path, PI5_TEXT.replace(old, new))


def test_schema_is_a_valid_json_schema():
    jsonschema.Draft202012Validator.check_schema(load_schema())


def test_required_devices_are_shipped_with_their_cores():
    assert set(REQUIRED_DEVICES) <= set(known_profiles())
    for name, (arch, core) in REQUIRED_DEVICES.items():
        p = load_profile(name)
        assert (p.name, p.arch, p.core_type) == (name, arch, core)


@pytest.mark.parametrize("name", known_profiles())
def test_every_shipped_profile_validates_and_is_consistent(name):
    path = PROFILE_DIR / f"{name}.toml"
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    jsonschema.validate(data, load_schema())  # the published schema alone accepts the file
    p = load_profile(name)
    assert p.path == str(path)
    assert p.sources and all(s.strip() for s in p.sources)
    assert p.execution_providers and set(p.execution_providers) <= set(known_execution_providers())
    if p.cores:
        assert 1 <= p.threads <= p.cores
    for budget, total in ((p.ram_budget_bytes, p.ram_total_bytes), (p.storage_budget_bytes, p.storage_total_bytes)):
        assert budget >= 0
        if budget and total:
            assert budget < total  # room is left for the OS
    json.dumps(p.to_dict())  # JSON-ready for the report


def test_device_budgets_are_documented_fractions_of_a_named_sku():
    pi5 = load_profile("raspberry-pi-5")
    assert pi5.ram_total_bytes == 4 * 2**30 and pi5.ram_budget_bytes == 3 * 2**30
    assert "4GB SKU" in pi5.ram_budget_basis and "75 %" in pi5.ram_budget_basis
    jetson = load_profile("jetson-orin-nano")
    assert jetson.cores == 6 and jetson.allow_fallback
    assert jetson.execution_providers[0] == "CUDAExecutionProvider" and jetson.execution_providers[-1] == "CPUExecutionProvider"
    assert "share" in jetson.ram_budget_basis  # 8 GB shared with the GPU
    imx = load_profile("nxp-imx8m-plus")
    assert imx.execution_providers == ("CPUExecutionProvider",)
    assert any("VX delegate" in n and "not through an ONNX Runtime execution provider" in n for n in imx.notes)


def test_backward_compatible_construction_and_threads():
    p = HardwareProfile(name="x", description="d", arch="native", threads=0, execution_providers=("CPUExecutionProvider",))
    assert p.resolved_threads() >= 1 and p.ram_budget_bytes == 0 and p.allow_fallback is False and p.device is None
    assert load_profile("raspberry-pi-5").resolved_threads() == 4


def test_provider_options_become_strings():
    jetson = load_profile("jetson-orin-nano")
    assert jetson.provider_options == {"CUDAExecutionProvider": {"device_id": "0"}}


def test_unknown_profile_lists_known_ones():
    with pytest.raises(ProfileError, match="unknown hardware profile 'toaster'; known profiles: .*raspberry-pi-5"):
        load_profile("toaster")


def test_profile_file_path_is_accepted(tmp_path):
    path = write_profile(tmp_path, PI5_TEXT)
    assert load_profile(str(path)).path == str(path)


@pytest.mark.parametrize("old,new,fragments", [
    ('allow_fallback = false', 'allow_fallback = false\nfan_speed = 3',
     ["fan_speed: unknown key", "known keys here:", "threads"]),
    ('ram_budget_bytes = 3_221_225_472', 'ram_budget_bytes = "3 GiB"',
     ["ram_budget_bytes: got string \"3 GiB\", not an integer", "integer number of bytes"]),
    ('threads = 4 ', 'threads = 8 ', ["key 'threads' = 8 exceeds 'cores' = 4"]),
    ('ram_budget_bytes = 3_221_225_472', 'ram_budget_bytes = 0', ["ram_budget_bytes: 0 is not above 0", "omit the key"]),
    ('storage_budget_bytes = 8_000_000_000', 'storage_budget_bytes = -5', ["storage_budget_bytes: -5 is not above 0"]),
    ('ram_budget_bytes = 3_221_225_472', 'ram_budget_bytes = 5_000_000_000',
     ["key 'ram_budget_bytes' = 5000000000 exceeds 'ram_total_bytes' = 4294967296"]),
    ('execution_providers = ["CPUExecutionProvider"]', 'execution_providers = ["ACLExecutionProvider"]',
     ["'ACLExecutionProvider' is not an execution provider ONNX Runtime knows", "known:", "CPUExecutionProvider"]),
    ('execution_providers = ["CPUExecutionProvider"]', 'execution_providers = []', ["execution_providers: must not be empty"]),
    ('allow_fallback = false', 'allow_fallback = false\nprovider_options = { CUDAExecutionProvider = { device_id = 0 } }',
     ["key 'provider_options.CUDAExecutionProvider'", "not in 'execution_providers'"]),
    ('name = "raspberry-pi-5"', 'name = "raspberry-pi-6"', ["key 'name' is 'raspberry-pi-6' but the file is raspberry-pi-5.toml"]),
    ('core_type = "Cortex-A76"\n', '', ["core_type: missing required key"]),
    ('cores = 4', 'cores = 0', ["key 'cores' is 0 for a aarch64 device"]),
    ('arch = "aarch64"', 'arch = "arm64"', ['arch: "arm64" is not allowed', 'one of "native", "aarch64"']),
    ('latency_budgets = { decode_p50_ms_per_token_max = 200.0 }', 'latency_budgets = { decode_p50_ms_per_token_max = 0 }',
     ["latency_budgets.decode_p50_ms_per_token_max: 0 is not above 0"]),
    ('latency_budgets = { decode_p50_ms_per_token_max = 200.0 }', 'latency_budgets = { decode_p99_ms = 200.0 }',
     ["latency_budgets.decode_p99_ms: unknown key", "decode_p50_ms_per_token_max", "decode_p90_ms_per_token_max"]),
    ('ram_budget_basis = ', 'ram_budget_note = ', ["ram_budget_note: unknown key"]),
    ('threads = 4 ', 'threads = true ', ["threads: got boolean true, not an integer"]),
])
def test_bad_profile_names_file_and_key(tmp_path, old, new, fragments):
    path = edited_pi5(tmp_path, old, new)
    with pytest.raises(ProfileError) as exc:
        load_profile_file(path)
    msg = str(exc.value)
    assert msg.startswith(f"hardware profile {path}: ") and "\n" not in msg
    for frag in fragments:
        assert frag in msg, (frag, msg)


def test_budget_without_basis_is_rejected(tmp_path):
    path = edited_pi5(tmp_path, 'ram_budget_basis = ', '# ram_budget_basis = ')
    with pytest.raises(ProfileError, match="key 'ram_budget_bytes' has no 'ram_budget_basis'"):
        load_profile_file(path)


def test_invalid_toml_and_missing_file(tmp_path):
    with pytest.raises(ProfileError, match="not valid TOML"):
        load_profile_file(write_profile(tmp_path, "name = [unclosed"))
    with pytest.raises(ProfileError, match="file not found"):
        load_profile_file(tmp_path / "nope.toml")


def run_main(capsys, *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(argv))
        raise SystemExit(0)
    out = capsys.readouterr()
    return exc.value.code or 0, out.out, out.err


def test_cli_profiles_list_is_a_table_of_all_profiles(capsys):
    code, out, _ = run_main(capsys, "profiles", "list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["NAME", "ARCH", "CORE"]
    rows = {ln.split()[0]: ln for ln in lines[1:]}
    assert set(rows) == set(known_profiles())
    assert "Cortex-A76" in rows["raspberry-pi-5"] and "3.0 GiB" in rows["raspberry-pi-5"] and "8.0 GB" in rows["raspberry-pi-5"]
    assert "CUDAExecutionProvider > CPUExecutionProvider (fallback allowed)" in rows["jetson-orin-nano"]


def test_cli_profiles_show_prints_every_source(capsys):
    code, out, _ = run_main(capsys, "profiles", "show", "nxp-imx8m-plus")
    assert code == 0
    p = load_profile("nxp-imx8m-plus")
    for s in p.sources:
        assert s in out
    assert "4,294,967,296 bytes (4.0 GiB) of 6,442,450,944 bytes" in out


def test_cli_profiles_bad_input_exits_2(capsys, tmp_path):
    code, _, err = run_main(capsys, "profiles", "show", "toaster")
    assert code == 2 and "unknown hardware profile 'toaster'" in err
    bad = edited_pi5(tmp_path, 'threads = 4 ', 'threads = 9 ')
    code, _, err = run_main(capsys, "profiles", "validate", str(bad))
    assert code == 2 and str(bad) in err and "'threads' = 9" in err
    code, out, _ = run_main(capsys, "profiles", "validate", str(PROFILE_DIR / "host.toml"))
    assert code == 0 and "valid profile 'host'" in out
