"""Recorded torch.profiler events, built from torch 2.14's own types, for the breakdown tests.

CPU ops are ``torch.autograd.profiler_util.FunctionEvent`` objects (times in microseconds, as
``_parse_kineto_results`` makes them), nested by time and given their CPU parents by torch's own
``EventList._build_tree``. A GPU kernel is a ``FunctionEvent`` of ``DeviceType.CUDA`` whose
``linked_correlation_id`` is the id of the op that launched it; :meth:`FakeProfile.events`
attaches it to that op exactly as ``_parse_kineto_results`` does (``append_kernel`` with the
kernel's duration), so the categorisation reads what a real CUDA profile gives it.
"""

from __future__ import annotations

from typing import Optional

from torch.autograd import DeviceType
from torch.autograd.profiler_util import EventList, FunctionEvent

MAIN, BACKWARD = 1, 2  # thread ids: the training thread; CUDA's autograd device thread


class FakeProfile:
    def __init__(self, use_device: Optional[str] = None) -> None:
        self.use_device = use_device
        self.cpu: list[FunctionEvent] = []
        self.device: list[FunctionEvent] = []
        self.next_id = 1

    def op(self, name: str, start: float, end: float, thread: int = MAIN, annotation: bool = False) -> FunctionEvent:
        e = FunctionEvent(id=self.next_id, name=name, thread=thread, start_us=start, end_us=end,
                          use_device=self.use_device, device_type=DeviceType.CPU, is_user_annotation=annotation,
                          activity_type="user_annotation" if annotation else "cpu_op")
        self.next_id += 1
        self.cpu.append(e)
        return e

    def kernel(self, launcher: FunctionEvent, name: str, start: float, end: float,
               activity: str = "kernel") -> FunctionEvent:
        e = FunctionEvent(id=10_000 + self.next_id, name=name, thread=0, start_us=start, end_us=end,
                          use_device=self.use_device, device_type=DeviceType.CUDA, activity_type=activity,
                          linked_correlation_id=launcher.id, is_user_annotation=activity == "gpu_user_annotation")
        self.next_id += 1
        self.device.append(e)
        return e

    def events(self) -> EventList:
        """All events as ``profile.events()`` returns them: kernels correlated, tree built."""
        by_id = {e.id: e for e in self.cpu}
        for k in self.device:  # torch/autograd/profiler.py, "associate device kernels ... with CPU events"
            launcher = by_id.get(k.linked_correlation_id)
            if launcher is not None:  # torch attaches every linked device event, annotations included
                launcher.append_kernel(k.name, k.device_index, k.time_range.end - k.time_range.start)
        events = EventList(sorted(self.cpu + self.device, key=lambda e: [e.time_range.start, -e.time_range.end]),
                           use_device=self.use_device)
        events._build_tree()  # noqa: SLF001 - torch's own nesting, as profile.events() has it
        return events
