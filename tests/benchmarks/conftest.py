"""pytest-benchmark: machine facts that decide whether two runs may be compared at all."""
from __future__ import annotations

from bench import environment


def pytest_benchmark_update_machine_info(config, machine_info):
    from threadpoolctl import threadpool_info

    machine_info["nablabench"] = environment.collect(environment.cpu_count())
    machine_info["threadpools"] = [
        {k: p.get(k) for k in ("internal_api", "version", "num_threads", "architecture")}
        for p in threadpool_info()
    ]
    try:
        import torch

        machine_info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            machine_info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
