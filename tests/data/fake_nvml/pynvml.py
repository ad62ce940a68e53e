"""A stand-in for NVIDIA's `pynvml` (nvidia-ml-py) that replays recorded NVML answers, for machines without a
GPU. Put this folder first on PYTHONPATH (a subprocess) or in sys.modules (in-process).

The answers come from the JSON file named by FTUI_FAKE_NVML:
  {"init_error": false,
   "devices": [{"processes": [{"pid": 123, "usedGpuMemory": 1610612736}],
                "samples": [{"pid": 123, "timeStamp": 0, "smUtil": 35}] | null,   # null: NVML_ERROR_NOT_FOUND
                "util": 80}]}
Every nvmlInit call appends a line to FTUI_FAKE_NVML + ".inits", so a test can count them. Shapes follow
pynvml 13: process objects with pid / usedGpuMemory (None when not available), samples with pid / timeStamp /
smUtil / memUtil, utilisation rates with gpu / memory.
"""

from __future__ import annotations

import json
import os
import time
from types import SimpleNamespace
from typing import Any

NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_DRIVER_NOT_LOADED = 9


class NVMLError(Exception):
    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.value = value


_state: dict[str, Any] = {}


def _answers() -> dict[str, Any]:
    with open(os.environ["FTUI_FAKE_NVML"]) as handle:
        return json.load(handle)


def nvmlInit() -> None:
    with open(os.environ["FTUI_FAKE_NVML"] + ".inits", "a") as handle:
        handle.write("init\n")
    if _answers().get("init_error"):
        raise NVMLError(NVML_ERROR_DRIVER_NOT_LOADED)
    _state["ready"] = True


def _devices() -> list[dict[str, Any]]:
    if not _state.get("ready"):
        raise NVMLError(NVML_ERROR_UNINITIALIZED)
    return _answers()["devices"]


def nvmlDeviceGetCount() -> int:
    return len(_devices())


def nvmlDeviceGetHandleByIndex(index: int) -> int:
    _devices()[index]
    return index


def nvmlDeviceGetComputeRunningProcesses(handle: int) -> list[SimpleNamespace]:
    return [
        SimpleNamespace(pid=p["pid"], usedGpuMemory=p.get("usedGpuMemory"), gpuInstanceId=0)
        for p in _devices()[handle]["processes"]
    ]


def nvmlDeviceGetProcessUtilization(handle: int, timeStamp: int) -> list[SimpleNamespace]:
    samples = _devices()[handle].get("samples")
    if samples is None:
        raise NVMLError(NVML_ERROR_NOT_FOUND)
    now = int(time.time() * 1e6)
    found = [
        SimpleNamespace(pid=s["pid"], timeStamp=s.get("timeStamp") or now, smUtil=s["smUtil"], memUtil=0)
        for s in samples
    ]
    return [s for s in found if s.timeStamp > timeStamp]


def nvmlDeviceGetUtilizationRates(handle: int) -> SimpleNamespace:
    return SimpleNamespace(gpu=_devices()[handle]["util"], memory=0)


def nvmlShutdown() -> None:
    _state.clear()
