"""The harness's own cost: the same training with the NVML monitor off and on (goal: < 1%)."""

import pytest

from speedtrain import Section


SECTION = Section("GPU monitor overhead", parameter="NVML monitor", order=150)
REFERENCE = {"monitor": False}


@pytest.mark.parametrize("monitor", [False, True], ids=["monitor-off", "monitor-on"])
def test_monitor_overhead(run_case, monitor):
    run_case(monitor=monitor)
