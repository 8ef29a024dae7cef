"""The web UI's own texts in English and Chinese (field help texts live in the config schema)."""

from __future__ import annotations

__all__ = ["FIELD_LABELS", "TEXTS"]

# Short labels of config keys shown as form fields: key -> (en, zh). The help under each label is the
# schema's; a test checks every key here exists in the schema.
FIELD_LABELS: dict[str, tuple[str, str]] = {
    # model (top bar)
    "model_name_or_path": ("Model name or path", "模型名称或路径"),
    "adapter_name_or_path": ("Adapter path(s)", "适配器路径"),
    "finetuning_type": ("Finetuning method", "微调方法"),
    "quantization_bit": ("Quantization bits", "量化比特数"),
    "quantization_method": ("Quantization method", "量化方法"),
    "template": ("Chat template", "对话模板"),
    "rope_scaling": ("RoPE scaling", "RoPE 缩放"),
    "flash_attn": ("Attention", "注意力实现"),
    "compute_type": ("Compute type", "计算精度"),
    # data
    "stage": ("Stage", "训练阶段"),
    "dataset_dir": ("Data dir", "数据目录"),
    "dataset": ("Datasets", "数据集"),
    "eval_dataset": ("Eval datasets", "评估数据集"),
    "cutoff_len": ("Cutoff length", "截断长度"),
    "max_samples": ("Max samples", "最大样本数"),
    "val_size": ("Val size", "验证集比例"),
    "test_size": ("Test size", "测试集比例"),
    "packing": ("Packing", "序列打包"),
    "train_on_prompt": ("Train on prompt", "学习提示词"),
    "mask_history": ("Mask history", "不学习历史对话"),
    # training
    "learning_rate": ("Learning rate", "学习率"),
    "num_train_epochs": ("Epochs", "训练轮数"),
    "max_steps": ("Max steps", "最大步数"),
    "max_grad_norm": ("Max grad norm", "最大梯度范数"),
    "per_device_train_batch_size": ("Batch size", "批大小"),
    "per_device_eval_batch_size": ("Eval batch size", "评估批大小"),
    "gradient_accumulation_steps": ("Gradient accumulation", "梯度累积"),
    "lr_scheduler_type": ("LR scheduler", "学习率调度器"),
    "warmup_steps": ("Warmup steps", "预热步数"),
    "warmup_ratio": ("Warmup ratio", "预热比例"),
    "weight_decay": ("Weight decay", "权重衰减"),
    "neftune_noise_alpha": ("NEFTune alpha", "NEFTune 噪声强度"),
    "optim": ("Optimizer", "优化器"),
    "gradient_checkpointing": ("Gradient checkpointing", "梯度检查点"),
    "eval_strategy": ("Eval strategy", "评估策略"),
    "eval_steps": ("Eval steps", "评估间隔步数"),
    "seed": ("Seed", "随机种子"),
    # output
    "output_dir": ("Output dir", "输出目录"),
    "logging_steps": ("Logging steps", "日志间隔"),
    "save_steps": ("Save steps", "保存间隔"),
    "save_total_limit": ("Max checkpoints", "最多检查点数"),
    "report_to": ("Report to", "日志上报"),
    # freeze
    "freeze_trainable_layers": ("Trainable layers", "可训练层数"),
    "freeze_trainable_modules": ("Trainable modules", "可训练模块"),
    "freeze_extra_modules": ("Extra modules", "额外模块"),
    # lora
    "lora_rank": ("LoRA rank", "LoRA 秩"),
    "lora_alpha": ("LoRA alpha", "LoRA 缩放系数"),
    "lora_dropout": ("LoRA dropout", "LoRA 随机丢弃"),
    "loraplus_lr_ratio": ("LoRA+ LR ratio", "LoRA+ 学习率比例"),
    "use_rslora": ("rsLoRA", "rsLoRA"),
    "use_dora": ("DoRA", "DoRA"),
    "pissa_init": ("PiSSA", "PiSSA"),
    "lora_target": ("Target modules", "LoRA 作用模块"),
    "additional_target": ("Additional modules", "附加模块"),
    # preference stages (present once the stages define them)
    "pref_beta": ("Beta", "Beta 参数"),
    "pref_ftx": ("FTX gamma", "SFT 损失系数"),
    "pref_loss": ("Loss type", "损失类型"),
    "reward_model": ("Reward model", "奖励模型"),
    # knowledge distillation (stage kd)
    "teacher_model_name_or_path": ("Teacher model or run", "教师模型或运行目录"),
    "teacher_adapter_name_or_path": ("Teacher adapters", "教师适配器"),
    "teacher_compute_type": ("Teacher precision", "教师计算精度"),
    "kd_loss": ("KD loss", "蒸馏损失"),
    "kd_temperature": ("Temperature T", "温度 T"),
    "kd_alpha": ("KD weight alpha", "蒸馏权重 alpha"),
    "kd_jsd_beta": ("JSD beta", "JSD beta"),
    "kd_topk": ("Teacher top-k", "教师 top-k"),
    "kd_chunk_tokens": ("Tokens per logit chunk", "每块 logits 的 token 数"),
    "kd_teacher_cache": ("Teacher cache directory", "教师缓存目录"),
    # health monitor and early stopping
    "health.enabled": ("Health monitor", "健康监控"),
    "health.nonfinite_action": ("NaN/Inf action", "NaN/Inf 处理"),
    "health.update_ratio_action": ("Divergence action", "发散处理"),
    "health.grad_norm_alarm": ("Grad-norm alarm", "梯度范数告警值"),
    "health.grad_norm_action": ("Exploding-gradient action", "梯度爆炸处理"),
    "health.spike_action": ("Loss-spike action", "损失尖峰处理"),
    "health.oscillation_action": ("Oscillation action", "震荡处理"),
    "health.stagnation_action": ("Stagnation action", "停滞处理"),
    "health.overfit_action": ("Overfitting action", "过拟合处理"),
    "health.max_interventions": ("Max interventions", "最多干预次数"),
    "early_stopping.enabled": ("Early stopping", "早停"),
    "early_stopping.metric": ("Metric", "监控指标"),
    "early_stopping.patience": ("Patience", "耐心值"),
    "early_stopping.min_delta": ("Min delta", "最小提升"),
    "early_stopping.on_plateau": ("On plateau", "平台期处理"),
    # generation (chat, evaluate)
    "max_new_tokens": ("Max new tokens", "最大生成长度"),
    "temperature": ("Temperature", "温度系数"),
    "top_p": ("Top-p", "Top-p 采样值"),
    "top_k": ("Top-k", "Top-k 采样值"),
    "do_sample": ("Sample", "采样解码"),
    "num_beams": ("Beams", "束搜索宽度"),
    "repetition_penalty": ("Repetition penalty", "重复惩罚"),
    "default_system": ("System prompt", "系统提示词"),
    # eval
    "predict_with_generate": ("Predict with generate", "生成式预测"),
    "eval_split": ("Split", "数据划分"),
    "save_dir": ("Save dir", "保存目录"),
    # export
    "export_dir": ("Export dir", "导出目录"),
    "export_size": ("Max shard size (GB)", "最大分片大小（GB）"),
    "export_dtype": ("Export dtype", "导出数据类型"),
    "export_legacy_format": ("Legacy .bin format", "使用旧版 .bin 格式"),
    "export_quantization_bit": ("Export quantization bits", "导出量化比特数"),
    "export_quantization_method": ("Export quantization method", "导出量化方法"),
    "export_quantization_dataset": ("Calibration dataset", "校准数据集"),
    "export_quantization_nsamples": ("Calibration samples", "校准样本数"),
    "export_quantization_maxlen": ("Calibration max length", "校准样本最大长度"),
    "export_device": ("Export device", "导出设备"),
    "export_hub_model_id": ("Hub model id", "Hub 模型 ID"),
    "export_verify": ("Verify after export", "导出后校验"),
}


def _t(en: str, zh: str) -> dict[str, str]:
    return {"en": en, "zh": zh}


TEXTS: dict[str, dict[str, str]] = {
    "app.subtitle": _t("fine-tuning workbench", "大模型微调工作台"),
    "hint": _t("fix", "解决办法"),
    # tabs
    "tab.train": _t("Train", "训练"),
    "tab.tune": _t("Tune", "调参"),
    "tab.evaluate": _t("Evaluate & Predict", "评估与预测"),
    "tab.chat": _t("Chat", "对话"),
    "tab.export": _t("Export", "导出"),
    "tab.runs": _t("Runs", "运行记录"),
    # top bar
    "btn.refresh": _t("Refresh", "刷新"),
    "acc.advanced_model": _t("Advanced model settings", "高级模型设置"),
    "booster.auto": _t("Booster: auto", "加速：自动"),
    "booster.fa2": _t("FlashAttention-2", "FlashAttention-2"),
    "booster.unsloth": _t("Unsloth", "Unsloth"),
    "booster.liger": _t("Liger kernel", "Liger 内核"),
    "booster.checking": _t("checking availability…", "正在检测是否可用…"),
    "booster.available": _t("available", "可用"),
    "booster.no_cuda": _t("unavailable: needs a CUDA GPU", "不可用：需要 CUDA GPU"),
    "booster.no_package": _t("unavailable: package not installed", "不可用：未安装对应软件包"),
    "booster.no_key": _t(
        "unavailable: not supported by this tunelab version", "不可用：当前 tunelab 版本不支持"
    ),
    # train tab
    "btn.preview_data": _t("Preview data", "预览数据"),
    "acc.extra": _t("Extra settings", "更多设置"),
    "acc.freeze": _t("Freeze settings", "部分参数微调设置"),
    "acc.lora": _t("LoRA settings", "LoRA 设置"),
    "acc.preference": _t("Preference settings (RM/DPO/KTO/PPO)", "偏好训练设置（RM/DPO/KTO/PPO）"),
    "acc.kd": _t("Knowledge distillation (KD)", "知识蒸馏（KD）"),
    "acc.health": _t("Health monitor & early stopping", "健康监控与早停"),
    "acc.devices": _t("Devices (several processes, DeepSpeed)", "设备（多进程、DeepSpeed）"),
    "lbl.nproc_per_node": _t("Processes per node", "每节点进程数"),
    "lbl.nnodes": _t("Nodes", "节点数"),
    "lbl.deepspeed_preset": _t("DeepSpeed ZeRO preset", "DeepSpeed ZeRO 预设"),
    "lbl.offload": _t("Offload to CPU RAM", "卸载到 CPU 内存"),
    "lbl.config_path": _t("Config path (save / load)", "配置文件路径（保存/载入）"),
    "btn.preview_cmd": _t("Preview command", "预览命令"),
    "btn.save": _t("Save config", "保存配置"),
    "btn.load": _t("Load config", "载入配置"),
    "btn.start": _t("Start", "开始"),
    "btn.abort": _t("Abort", "中断"),
    "lbl.yaml": _t("Config (YAML)", "配置（YAML）"),
    "lbl.cli": _t("Command line", "命令行"),
    "lbl.loss_plot": _t("Loss (train + eval)", "损失（训练 + 评估）"),
    "lbl.lr_plot": _t("Learning rate", "学习率"),
    "lbl.log": _t("Output", "输出"),
    "msg.valid": _t("The config is valid.", "配置有效。"),
    "msg.saved": _t("Saved {path}", "已保存 {path}"),
    "msg.loaded": _t("Loaded {path}", "已载入 {path}"),
    "msg.started": _t("Started: {cmd}", "已启动：{cmd}"),
    "msg.already_running": _t(
        "A training job is already running; abort it first.", "已有训练任务在运行，请先中断它。"
    ),
    "msg.nothing_running": _t("Nothing is running.", "当前没有运行中的任务。"),
    "msg.aborting": _t(
        "Stopping: the current step finishes, then a checkpoint is saved…",
        "正在停止：完成当前步后保存检查点…",
    ),
    "msg.aborted": _t(
        "Stopped; checkpoint saved at {checkpoint}. Start again with resume_from_checkpoint=auto to continue.",
        "已停止，检查点保存在 {checkpoint}。设置 resume_from_checkpoint=auto 后再次开始即可继续训练。",
    ),
    "msg.finished": _t("Finished: {run}  {metrics}", "训练完成：{run}  {metrics}"),
    "msg.stopped": _t(
        "Stopped by the health monitor; see the events above and {run}/events.jsonl.",
        "被健康监控停止；见上方事件和 {run}/events.jsonl。",
    ),
    "msg.failed": _t(
        "The job failed (exit code {code}); see the output below.", "任务失败（退出码 {code}）；见下方输出。"
    ),
    "status.running": _t("running", "运行中"),
    "status.finished": _t("finished", "已完成"),
    "status.stopped": _t("stopped by the health monitor", "被健康监控停止"),
    "status.aborted": _t("aborted (checkpoint saved)", "已中断（已保存检查点）"),
    "status.failed": _t("failed", "失败"),
    "status.lost": _t("ended (started by an earlier web UI)", "已结束（由之前的 Web UI 启动）"),
    "progress.waiting": _t("starting: loading the model and data…", "正在启动：加载模型和数据…"),
    "progress.step": _t("step {step}/{total} ({pct}%)", "第 {step}/{total} 步（{pct}%）"),
    "progress.elapsed": _t("elapsed {t}", "已用 {t}"),
    "progress.eta": _t("ETA {t}", "预计剩余 {t}"),
    "events.none": _t("Health monitor: no events so far.", "健康监控：暂无事件。"),
    "events.title": _t("Health monitor and run events ({n})", "健康监控与运行事件（{n}）"),
    "preview.sample": _t("{n} tokens, {learned} learned", "{n} 个 token，其中 {learned} 个参与学习"),
    "preview.legend": _t("Highlighted: tokens the loss is computed on.", "高亮部分：计算损失的 token。"),
    # evaluate tab
    "lbl.compare_with": _t("Compare with (before/after)", "对比模型（训练前/后）"),
    "info.compare_with": _t(
        "none; base (the model before fine-tuning); or a run directory to measure side by side",
        "none；base（微调前的基座模型）；或另一个运行目录，并排对比",
    ),
    "btn.evaluate": _t("Evaluate", "开始评估"),
    "lbl.metrics": _t("Metrics", "指标"),
    "lbl.predictions": _t("Sample predictions", "预测样例"),
    # chat tab
    "btn.load_model": _t("Load model", "加载模型"),
    "btn.unload_model": _t("Unload model", "卸载模型"),
    "lbl.chat": _t("Chat", "对话"),
    "lbl.message": _t("Message", "输入消息"),
    "btn.send": _t("Send", "发送"),
    "btn.clear": _t("Clear history", "清空历史"),
    "chat.loaded": _t(
        "Loaded {model} (adapters: {adapters}; template {template}) for this browser session; "
        "other sessions load their own.",
        "已为当前浏览器会话加载 {model}（适配器：{adapters}；模板 {template}）；其他会话各自加载。",
    ),
    "chat.unloaded": _t("Model unloaded.", "模型已卸载。"),
    "chat.none_loaded": _t(
        "No model loaded: pick a model (and adapters) in the top bar, then Load model.",
        "尚未加载模型：先在顶栏选择模型（和适配器），再点击“加载模型”。",
    ),
    "chat.load_first": _t("Load a model first.", "请先加载模型。"),
    "chat.usage": _t(
        "{prompt} prompt tokens, {completion} generated", "提示 {prompt} 个 token，生成 {completion} 个"
    ),
    # export tab
    "lbl.export_source": _t("Model to export", "要导出的模型"),
    "export.topbar_source": _t("the top bar's model + adapters", "顶栏所选模型 + 适配器"),
    "btn.export": _t("Export", "开始导出"),
    "lbl.export_report": _t("Export report", "导出报告"),
    "export.not_verified": _t("Not verified (export_verify is off).", "未校验（export_verify 已关闭）。"),
    "export.verified": _t(
        "Verification passed: max |logit difference| {diff} (tolerance {tol}); same next token at {agree}% of {n} positions.",
        "校验通过：最大 logit 差 {diff}（容差 {tol}）；{n} 个位置中 {agree}% 预测的下一个 token 相同。",
    ),
    "export.verify_failed": _t(
        "Verification FAILED: max |logit difference| {diff} above tolerance {tol}; same next token at {agree}% of {n} positions.",
        "校验失败：最大 logit 差 {diff} 超过容差 {tol}；{n} 个位置中 {agree}% 预测的下一个 token 相同。",
    ),
    # runs tab
    "lbl.compare_runs": _t("Runs to compare", "要对比的运行"),
    "btn.compare": _t("Compare", "对比"),
    "lbl.runs": _t("Runs", "运行记录"),
    "lbl.compare_curves": _t("Loss curves", "损失曲线"),
    "lbl.config_diff": _t("Config differences", "配置差异"),
    "runs.pick_two": _t("Pick at least two runs to compare.", "请至少选择两个运行进行对比。"),
    "runs.no_diff": _t("(no differences)", "（无差异）"),
    # tune tab
    "lbl.task": _t("Task type (advise)", "任务类型（建议）"),
    "lbl.gpu_mem": _t("Memory budget (GB)", "显存预算（GB）"),
    "info.gpu_mem": _t(
        "advise / estimate: GPU memory to plan for; empty = this machine",
        "advise / estimate：按多少显存规划；留空则用本机",
    ),
    "lbl.max_mem": _t("Memory ceiling (GB, find-batch)", "内存上限（GB，find-batch）"),
    "info.max_mem": _t(
        "find-batch: treat more than this as out of memory (CPU); empty = device limit",
        "find-batch：超过该值视为内存不足（CPU）；留空则用设备上限",
    ),
    "lbl.lr_steps": _t("LR range test steps (lr-find)", "学习率范围测试步数（lr-find）"),
    "btn.advise": _t("Advise", "推荐超参数"),
    "btn.estimate": _t("Estimate memory", "估算显存"),
    "btn.find-batch": _t("Find batch size", "寻找批大小"),
    "btn.lr-find": _t("Find learning rate", "寻找学习率"),
    "lbl.tool_result": _t("Result", "结果"),
    "lbl.tool_plot": _t("Plot", "图表"),
    "btn.apply": _t("Apply to form", "应用到表单"),
    "acc.study": _t("Sweep / Optuna study", "网格搜索 / Optuna 调参"),
    "lbl.study_mode": _t("Search", "搜索方式"),
    "info.study_mode": _t(
        "tune: Optuna over the tune: space; grid: every combination; around: 0.3x/1x/3x of a key; random: N samples",
        "tune：在 tune: 搜索空间上用 Optuna；grid：所有组合；around：某个键的 0.3/1/3 倍；random：随机 N 组",
    ),
    "lbl.study_spec": _t("Values", "取值"),
    "info.study_spec": _t(
        "grid/random: one key=v1,v2,... per line; around: key names (learning_rate)",
        "grid/random：每行一个 key=v1,v2,...；around：键名（如 learning_rate）",
    ),
    "lbl.n_trials": _t("Trials", "试验次数"),
    "lbl.workers": _t("Parallel workers", "并行进程数"),
    "lbl.study_dir": _t("Study dir", "实验目录"),
    "btn.start_study": _t("Start study", "开始搜索"),
    "btn.apply_best": _t("Apply best config", "应用最佳配置"),
    "lbl.trials": _t("Trials", "试验"),
    "lbl.study_plots": _t("Study plots", "搜索图表"),
    "msg.applied": _t("Applied to the form: {keys}", "已应用到表单：{keys}"),
    "msg.applied_best": _t(
        "Applied the best config of {path} to the form.", "已把 {path} 的最佳配置应用到表单。"
    ),
    "msg.no_best": _t("No finished trial with a result yet.", "尚无带结果的已完成试验。"),
    "tool.no_result": _t("The command wrote no result; see its output.", "命令没有写出结果；请查看输出。"),
    "tool.advise_done": _t("{n} recommended values with their reasons.", "{n} 项推荐值及其依据。"),
    "tool.fits": _t(
        "Fits: {total} GB needed of {budget} GB.", "可以运行：需要 {total} GB，可用 {budget} GB。"
    ),
    "tool.does_not_fit": _t(
        "Does NOT fit: {total} GB needed, {budget} GB available.",
        "放不下：需要 {total} GB，仅有 {budget} GB。",
    ),
    "tool.batch_found": _t(
        "Largest micro-batch: {micro}; gradient accumulation {accum} reaches the target batch.",
        "最大微批：{micro}；梯度累积 {accum} 可达到目标批大小。",
    ),
    "tool.lr_found": _t(
        "Suggested learning rate (source: lr-find): {lr}", "建议学习率（来源：学习率范围测试）：{lr}"
    ),
    "lbl.measure": _t("Measure the learning rate (advise)", "实测学习率（推荐超参数时）"),
    "info.measure": _t(
        "advise also runs the LR range test and combines it with the recipe; a study in the study dir overrides both",
        "推荐时同时运行学习率范围测试并与推荐规则合并；实验目录中已有的超参搜索结果优先",
    ),
    "tool.lr_answer": _t("Learning rate {text}", "学习率 {text}"),
    "study.lr_answer": _t("Best learning rate of this study: {text}", "本次搜索的最佳学习率：{text}"),
}
