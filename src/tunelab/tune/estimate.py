"""`tunelab estimate`: will this run fit in memory, and how long will an epoch take?

Memory comes from the model's shape and the run's settings (`tunelab.tune.memory`), so it works for
models that are not on disk (`--model-config llama3-8b`); time comes from a few real training steps
on this machine (`tunelab.tune.probe`), because arithmetic cannot know how fast a device really is.
When the model is on disk, the probe also measures the peak tensor memory of the worst-case batch,
so the estimate is shown next to a measurement.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from tunelab.errors import ConfigError, TunelabError
from tunelab.tune.hardware import Hardware, planned_hardware
from tunelab.tune.memory import MemoryBreakdown, TrainSetup, estimate_eval_memory, estimate_memory
from tunelab.tune.shape import ModelShape, read_model_shape
from tunelab.tune.zero import ENGINES, DeviceMemory, configured_engine, per_device_memory

if TYPE_CHECKING:
    from tunelab.config import RunConfig
    from tunelab.data.pipeline import DataStats

__all__ = [
    "EstimateReport",
    "check_budget_args",
    "check_world_args",
    "Timing",
    "compute_bytes_for",
    "estimate",
    "model_shape_for",
    "setup_from_config",
]


@dataclass(frozen=True)
class Timing:
    """Measured speed of this run's training steps on this machine, extrapolated to an epoch."""

    device: str
    seconds_per_micro_batch: float
    seconds_per_optimizer_step: float  # clip + step + zero_grad, on top of the micro-batches
    micro_batches_per_epoch: int
    optimizer_steps_per_epoch: int
    tokens_per_second: float
    n_measured: int

    @property
    def seconds_per_epoch(self) -> float:
        return (
            self.micro_batches_per_epoch * self.seconds_per_micro_batch
            + self.optimizer_steps_per_epoch * self.seconds_per_optimizer_step
        )


@dataclass
class EstimateReport:
    """Everything `tunelab estimate` found: shape, settings, memory, fit, time, measurement."""

    shape: ModelShape
    setup: TrainSetup
    memory: MemoryBreakdown
    eval_peak: int
    eval_batch: int
    hardware: Hardware
    seq_len_source: tuple[str, str]  # (English, Chinese)
    n_devices: int
    data: DataStats | None = None
    n_train_records: int | None = None
    timing: Timing | None = None
    measured_peak: int | None = None  # tensor bytes of a real step on the worst-case batch, when probed
    by_batch: list[tuple[int, int]] = field(default_factory=list)  # (micro-batch, estimated peak)
    notes: list[tuple[str, str]] = field(default_factory=list)  # (English, Chinese)
    world_size: int = 1  # processes per node x nodes
    device: DeviceMemory | None = (
        None  # per-device memory of the configured engine, when several devices or ZeRO
    )
    engines: list[DeviceMemory] = field(
        default_factory=list
    )  # every engine at this world size, for comparison

    @property
    def peak(self) -> int:
        """Peak tensor memory of one device under the configured engine."""
        return self.device.peak if self.device is not None else self.memory.peak

    @property
    def global_batch(self) -> int:
        return self.setup.micro_batch * self.setup.grad_accum * self.world_size

    @property
    def fits(self) -> bool:
        return self.peak <= self.hardware.budget_bytes

    @property
    def eval_fits(self) -> bool:
        return self.eval_peak <= self.hardware.budget_bytes

    def as_dict(self) -> dict[str, Any]:
        """Plain numbers for JSON output and other tools."""
        mem = self.memory
        out: dict[str, Any] = {
            "model": self.shape.name,
            "total_params": mem.total_params,
            "trainable_params": mem.trainable_params,
            "micro_batch": self.setup.micro_batch,
            "seq_len": self.setup.seq_len,
            "weights_bytes": mem.weights,
            "gradients_bytes": mem.gradients,
            "optimizer_states_bytes": mem.optimizer_states,
            "activations_bytes": mem.activations,
            "loss_peak_bytes": mem.loss_peak,
            "peak_bytes": mem.peak,
            "eval_peak_bytes": self.eval_peak,
            "budget_bytes": self.hardware.budget_bytes,
            "fits": self.fits,
            "eval_fits": self.eval_fits,
        }
        out["world_size"], out["global_batch"] = self.world_size, self.global_batch
        if self.device is not None:
            out["engine"], out["per_device_peak_bytes"] = self.device.label, self.device.peak
            out["engines"] = {
                m.label: {"peak_bytes": m.peak, "cpu_bytes_per_node": m.cpu_bytes_per_node}
                for m in self.engines
            }
        if self.measured_peak is not None:
            out["measured_peak_bytes"] = self.measured_peak
        if self.timing is not None:
            out["seconds_per_epoch"] = self.timing.seconds_per_epoch
            out["tokens_per_second"] = self.timing.tokens_per_second
        return out


def model_shape_for(config: RunConfig, model_config: str | None = None) -> ModelShape:
    """The shape of the config's model, or of the preset ``model_config`` when one is named."""
    if model_config:
        from tunelab.tune.presets import find_preset

        return find_preset(model_config).shape
    return read_model_shape(config.model.model_name_or_path, config.model.cache_dir)


def compute_bytes_for(config: RunConfig, hardware: Hardware) -> int:
    """Bytes per value of the compute precision the run would use on ``hardware`` (2 or 4)."""
    wanted = config.compute_type
    if wanted == "auto":
        return 2 if hardware.bf16 else 4
    return 4 if wanted == "fp32" else 2


def setup_from_config(
    config: RunConfig,
    *,
    compute_bytes: int,
    device: str,
    seq_len: int | None = None,
    micro_batch: int | None = None,
    attention: str | None = None,
) -> TrainSetup:
    """The memory-relevant settings of ``config`` (sequence length defaults to cutoff_len)."""
    f, t, m = config.finetuning, config.training, config.model
    if attention is None:
        attention = {"disabled": "eager", "eager": "eager", "fa2": "fa2"}.get(m.flash_attn, "sdpa")
    batch = micro_batch or t.per_device_train_batch_size
    return TrainSetup(
        method=f.finetuning_type,
        compute_bytes=compute_bytes,
        micro_batch=batch,
        seq_len=seq_len or config.data.cutoff_len,
        grad_accum=t.gradient_accumulation_steps,
        gradient_checkpointing=t.gradient_checkpointing,
        optimizer=t.optim,
        sgd_momentum=t.sgd_momentum,
        lora_rank=f.lora_rank,
        lora_targets=tuple(f.lora_target),
        lora_dropout=f.lora_dropout,
        use_dora=f.use_dora,
        additional_target=tuple(f.additional_target or ()),
        freeze_trainable_layers=f.freeze_trainable_layers,
        freeze_extra_modules=tuple(f.freeze_extra_modules or ()),
        quantization_bit=m.quantization_bit,
        double_quantization=m.double_quantization,
        attention=attention,
        device=device,
        # a batch of several rows pads (or packs) and so carries a 4-D mask; assume the worst case
        masked=config.data.packing or batch > 1,
    )


def estimate(
    config: RunConfig,
    *,
    model_config: str | None = None,
    gpu_mem: float | None = None,
    probe: bool = True,
    probe_steps: int = 3,
    nproc_per_node: int | None = None,
    nnodes: int = 1,
    console: Any = None,
) -> EstimateReport:
    """Estimate memory (and, when the model is here, time per epoch) of training ``config``.

    ``gpu_mem`` (GiB) plans for a GPU of that size instead of this machine; ``model_config`` names a
    preset architecture instead of the config's model; ``probe=False`` skips the measured steps.
    ``nproc_per_node`` x ``nnodes`` devices train together (default: the devices found here): memory
    is then per device, for the config's engine (DDP, or the ``deepspeed:`` / ``fsdp:`` sharding).
    """
    from tunelab.tune.datafacts import load_data_facts

    check_budget_args(gpu_mem)
    check_world_args(nproc_per_node, nnodes)
    hardware = planned_hardware(gpu_mem, nproc_per_node)
    shape = model_shape_for(config, model_config)
    compute = compute_bytes_for(config, hardware)
    facts = load_data_facts(config, tokens="rows" if model_config is None else "none")
    seq_len = facts.longest if facts.longest else config.data.cutoff_len
    if facts.longest:
        seq_source = (
            f"the longest training row after cutoff{'/packing' if config.data.packing else ''}",
            f"截断{'/打包' if config.data.packing else ''}后最长的训练行",
        )
    else:
        seq_source = ("cutoff_len; the data's lengths were not measured", "cutoff_len；未测量数据长度")
    setup = setup_from_config(config, compute_bytes=compute, device=hardware.device, seq_len=seq_len)
    memory = estimate_memory(shape, setup)
    eval_batch = config.training.per_device_eval_batch_size
    report = EstimateReport(
        shape=shape,
        setup=setup,
        memory=memory,
        eval_peak=estimate_eval_memory(shape, setup, eval_batch),
        eval_batch=eval_batch,
        hardware=hardware,
        seq_len_source=seq_source,
        n_devices=hardware.n_devices,
        data=facts.stats,
        n_train_records=facts.n_train,
        notes=list(memory.notes),
    )
    _add_engines(report, config, nnodes)
    report.by_batch = [(b, _peak_at(report, config, nnodes, b)) for b in _batch_ladder(setup.micro_batch)]
    same_device = gpu_mem is None or hardware.device == planned_hardware(None).device
    if probe and model_config is None and same_device:
        if facts.prepared is None:
            report.notes.append(
                (
                    f"time probe skipped: no training data ({facts.problem})",
                    f"跳过计时探测：没有训练数据（{facts.problem}）",
                )
            )
        elif report.memory.peak <= hardware.budget_bytes:  # the probe is one process, unsharded
            try:
                report.timing, report.measured_peak = _probe(
                    config, setup, facts, probe_steps, hardware, report.world_size, console
                )
            except TunelabError as err:
                report.notes.append((f"time probe skipped: {err.message}", f"跳过计时探测：{err.message}"))
            except RuntimeError as err:
                from tunelab.tune.memtrack import is_out_of_memory

                if not is_out_of_memory(err):
                    raise
                report.notes.append(
                    (
                        "the measured worst-case step ran out of memory although the estimate fits: "
                        "lower the micro-batch (`tunelab find-batch` measures the largest)",
                        "尽管估算放得下，实测最坏情况的训练步内存不足：请降低微批（`tunelab find-batch` 可测出最大值）",
                    )
                )
        else:
            report.notes.append(
                (
                    "time probe skipped: one unsharded process does not fit this device",
                    "跳过计时探测：估算显示单个未切分的进程在本设备放不下",
                )
            )
    elif probe and model_config is not None:
        report.notes.append(
            (
                "time needs the real model on this device; --model-config estimates memory only",
                "计时需要本设备上的真实模型；--model-config 只估算显存",
            )
        )
    elif probe and not same_device:
        report.notes.append(
            (
                "time is not measured: --gpu-mem plans for a device this machine does not have",
                "未计时：--gpu-mem 规划的是本机没有的设备",
            )
        )
    return report


def _probe(
    config: RunConfig,
    setup: TrainSetup,
    facts: Any,
    steps: int,
    hardware: Hardware,
    world_size: int,
    console: Any,
) -> tuple[Timing, int]:
    """Measure the worst-case step's peak memory and the speed of real steps on this machine."""
    from tunelab.tune.probe import TrainingProbe

    def run() -> tuple[Timing, int]:
        probe = TrainingProbe(config, prepared=facts.prepared, tokenizer=facts.tokenizer)
        ceiling = max(0, hardware.budget_bytes - probe.static_bytes())
        reading = probe.measure_train_peak(probe.worst_case_batch(setup.micro_batch), limit_bytes=ceiling)
        fb, opt, speed = probe.time_steps(setup.micro_batch, steps, seed=config.training.seed)
        micro = math.ceil(len(probe.rows) / (setup.micro_batch * world_size))
        timing = Timing(
            device=probe.device.type,
            seconds_per_micro_batch=fb,
            seconds_per_optimizer_step=opt,
            micro_batches_per_epoch=micro,
            optimizer_steps_per_epoch=math.ceil(micro / setup.grad_accum),
            tokens_per_second=speed,
            n_measured=steps,
        )
        return timing, reading.total_bytes

    if console is None:
        return run()
    with console.status(f"probing {steps + 2} training steps on this machine ..."):
        return run()


def _add_engines(report: EstimateReport, config: RunConfig, nnodes: int) -> None:
    """Per-device memory of the configured engine, and of every engine for comparison."""
    t = config.training
    stage, offload_opt, offload_params = configured_engine(t.deepspeed, t.fsdp, t.fsdp_config)
    report.world_size = report.hardware.n_devices * nnodes
    if report.world_size == 1 and stage is None:
        return  # one device, no ZeRO: the single-device breakdown is the answer
    shape, setup, world = report.shape, report.setup, report.world_size

    def on(s: int | None, o: bool, q: bool) -> DeviceMemory:
        return per_device_memory(
            shape, setup, world_size=world, n_nodes=nnodes, stage=s,
            offload_optimizer=o, offload_params=q, single=report.memory,
        )  # fmt: skip

    report.device = on(stage, offload_opt, offload_params)
    report.engines = [on(*engine) for engine in ENGINES]
    # evaluation runs beside this device's share of the states, not a whole replica
    resident = report.memory.weights + report.memory.optimizer_states
    report.eval_peak = report.eval_peak - resident + report.device.model_states
    if t.fsdp:
        report.notes.append(
            (
                f"FSDP is estimated as {report.device.label}, the ZeRO stage that shards the same states",
                f"FSDP 按切分相同状态的 {report.device.label} 估算",
            )
        )


def _peak_at(report: EstimateReport, config: RunConfig, nnodes: int, micro_batch: int) -> int:
    setup = replace(report.setup, micro_batch=micro_batch, masked=report.setup.masked or micro_batch > 1)
    single = estimate_memory(report.shape, setup)
    if report.device is None:
        return single.peak
    d = report.device
    return per_device_memory(
        report.shape, setup, world_size=report.world_size, n_nodes=nnodes, stage=d.stage,
        offload_optimizer=d.offload_optimizer, offload_params=d.offload_params, single=single,
    ).peak  # fmt: skip


def check_world_args(nproc_per_node: int | None, nnodes: int) -> None:
    """ConfigError for a non-positive --nproc-per-node or --nnodes."""
    if (nproc_per_node is not None and nproc_per_node < 1) or nnodes < 1:
        raise ConfigError(
            f"--nproc-per-node {nproc_per_node} --nnodes {nnodes}: both must be at least 1",
            "e.g. --nproc-per-node 8 --nnodes 2",
        )


def _batch_ladder(current: int) -> list[int]:
    sizes = sorted({1, 2, 4, 8, 16, 32, current})
    return [b for b in sizes if b <= max(32, current)]


def check_budget_args(gpu_mem: float | None) -> None:
    """ConfigError for a non-positive --gpu-mem."""
    if gpu_mem is not None and (not math.isfinite(gpu_mem) or gpu_mem <= 0):
        raise ConfigError(f"--gpu-mem {gpu_mem}: must be a positive number of GiB", "e.g. --gpu-mem 24")
