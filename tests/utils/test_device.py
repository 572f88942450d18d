"""--device: CUDA when there is one, else the CPU; a device this machine lacks is one line."""

import pytest
import torch
from click.testing import CliRunner

from chestclip.cli import cli
from chestclip.utils.device import DeviceError, inference_precision, resolve_device

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")


def test_default_is_cuda_when_available_else_cpu():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device(None).type == expected == resolve_device("auto").type
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("name", ["tpu", "cuda:x", "nonsense"])
def test_unknown_devices_are_refused(name):
    with pytest.raises(DeviceError, match=f"device '{name}'"):
        resolve_device(name)


@no_cuda
def test_cuda_without_a_gpu_is_one_line(tmp_path):
    with pytest.raises(DeviceError, match="no CUDA GPU visible"):
        resolve_device("cuda")
    # checked when the command line is parsed, before the run is read
    args = ["evaluate", "--run", str(tmp_path), "--data", str(tmp_path), "--device", "cuda:1"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1 and isinstance(result.exception, DeviceError)
    assert "\n" not in str(result.exception)


def test_mixed_precision_only_on_a_gpu():
    with inference_precision(torch.device("cpu"), "bf16-mixed"):
        assert not torch.is_autocast_enabled("cpu")
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
