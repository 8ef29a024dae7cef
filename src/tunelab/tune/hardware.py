"""What the machine offers a run: device kind, memory per device, bf16 support.

`advise` and `estimate` compare a memory estimate with this; `--gpu-mem` replaces the detected
device memory (plan for a GPU you do not have at hand). On a CPU the budget is the RAM available to
this process: MemAvailable, or the container's cgroup limit when that is lower.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["GIB", "Hardware", "available_ram_bytes", "detect_hardware", "planned_hardware"]

GIB = 2**30
# What the CUDA context, cuBLAS workspaces and allocator fragmentation take beside the tensors
# (max_memory_allocated): ~0.5 GiB of context, and the caching allocator rarely hands out more than
# ~90% of the rest in one long run. A common rule of thumb (e.g. DeepSpeed's memory estimators
# leave a similar margin); our estimate counts tensors only, so the budget takes the margin off.
_CUDA_CONTEXT_BYTES = GIB // 2
_CUDA_USABLE_SHARE = 0.9
# On a CPU the process shares RAM with everything else; keep a tenth free.
_CPU_USABLE_SHARE = 0.9


@dataclass(frozen=True)
class Hardware:
    """The device a run trains on and the memory it may use for tensors."""

    device: str  # "cuda" or "cpu"
    name: str
    n_devices: int
    memory_bytes: int  # per device (RAM available on a CPU)
    bf16: bool  # fast bf16 arithmetic (Ampere+ GPU, or a CPU with AMX/AVX512-BF16)
    source: str  # how memory_bytes was obtained: "detected" or "--gpu-mem"

    @property
    def budget_bytes(self) -> int:
        """Bytes of tensors that fit on one device, after the runtime's own share (see module constants)."""
        if self.device == "cuda":
            return max(0, int((self.memory_bytes - _CUDA_CONTEXT_BYTES) * _CUDA_USABLE_SHARE))
        return int(self.memory_bytes * _CPU_USABLE_SHARE)

    def describe(self, lang: str = "en") -> str:
        """One line: device, count, memory and where the number came from."""
        count = f"{self.n_devices} x " if self.n_devices > 1 else ""
        total, usable = self.memory_bytes / GIB, self.budget_bytes / GIB
        if lang == "zh":
            what = "可用内存" if self.device == "cpu" else "显存"
            source = "检测" if self.source == "detected" else self.source
            return (
                f"{count}{self.name}（{self.device}），{what} {total:.1f} GiB（{source}），张量可用 {usable:.1f} GiB，"
                f"bf16 {'支持' if self.bf16 else '不支持'}"
            )
        what = "RAM available" if self.device == "cpu" else "memory"
        return (
            f"{count}{self.name} ({self.device}), {total:.1f} GiB {what} ({self.source}), "
            f"usable for tensors {usable:.1f} GiB, bf16 {'yes' if self.bf16 else 'no'}"
        )


def available_ram_bytes(meminfo: Path = Path("/proc/meminfo"), cgroup: Path = Path("/sys/fs/cgroup")) -> int:
    """RAM this process can still use: MemAvailable, capped by the cgroup (v2 or v1) limit minus its usage."""
    available = 0
    try:
        for line in meminfo.read_text(encoding="ascii").splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
                break
    except (OSError, ValueError):
        available = 0
    for limit_name, usage_name in (
        ("memory.max", "memory.current"),
        ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes"),
    ):
        try:
            limit_text = (cgroup / limit_name).read_text(encoding="ascii").strip()
            usage = int((cgroup / usage_name).read_text(encoding="ascii").strip())
        except (OSError, ValueError):
            continue
        if limit_text.isdigit() and int(limit_text) < 2**60:
            room = int(limit_text) - usage
            available = min(available, room) if available else room
        break
    if available:
        return available
    import os

    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def detect_hardware() -> Hardware:
    """The device training would use here: CUDA GPU(s) when present, else the CPU and its free RAM."""
    import torch

    from tunelab.model.precision import resolve_compute_dtype

    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        return Hardware(
            device="cuda",
            name=props.name,
            n_devices=torch.cuda.device_count(),
            memory_bytes=int(props.total_memory),
            bf16=bool(torch.cuda.is_bf16_supported()),
            source="detected",
        )
    return Hardware(
        device="cpu",
        name="CPU",
        n_devices=1,
        memory_bytes=available_ram_bytes(),
        bf16=resolve_compute_dtype("auto") == torch.bfloat16,  # the run's own choice (measured probe)
        source="detected",
    )


def planned_hardware(gpu_mem_gib: float | None, n_devices: int | None = None) -> Hardware:
    """The hardware to plan for: a GPU of ``gpu_mem_gib`` GiB when given (assumed Ampere or newer), else this machine."""
    if gpu_mem_gib is None:
        found = detect_hardware()
        if n_devices is not None and n_devices != found.n_devices:
            return Hardware(found.device, found.name, n_devices, found.memory_bytes, found.bf16, found.source)
        return found
    return Hardware(
        device="cuda",
        name="GPU",
        n_devices=n_devices or 1,
        memory_bytes=int(gpu_mem_gib * GIB),
        bf16=True,
        source="--gpu-mem",
    )
