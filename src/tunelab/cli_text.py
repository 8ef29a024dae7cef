"""CLI help texts in English and Chinese; the language comes from TUNELAB_LANG or LANG.

Kept apart from cli.py so the command layer stays thin and the texts can be checked for
completeness (every key has both languages) by a test.
"""

from __future__ import annotations

import os

__all__ = ["TEXTS", "cli_lang", "t"]

TEXTS: dict[str, dict[str, str]] = {
    "app": {
        "en": "tunelab: fine-tune language models with hyperparameters chosen from evidence.",
        "zh": "tunelab：用有依据的超参数微调大语言模型。",
    },
    "train": {
        "en": "Train a model from a YAML config; add key=value overrides after it "
        "(e.g. tunelab train cfg.yaml learning_rate=5e-5 lora_rank=16).",
        "zh": "按 YAML 配置训练模型；可在其后追加 key=value 覆盖项"
        "（如 tunelab train cfg.yaml learning_rate=5e-5 lora_rank=16）。",
    },
    "check": {
        "en": "Validate a config (LLaMA-Factory flat or v1 layout) without loading anything: exit 0 when valid, "
        "1 with every problem listed once (file line, or 'command line' for overrides).",
        "zh": "校验配置（LLaMA-Factory 扁平或 v1 格式），不加载任何模型：有效时退出码 0，"
        "否则列出每个问题（文件行号，覆盖项标为 'command line'）并以 1 退出。",
    },
    "check.for": {
        "en": "What the config is for: train, eval, or any (chat/api/export); auto: eval for a task config, any for one with infer_backend or export_dir and no dataset.",
        "zh": "配置的用途：train、eval，或 any（chat/api/export）；auto：含 task 的配置按 eval 校验，含 infer_backend 或 export_dir 且无数据集的按 any 校验。",
    },
    "train.config": {"en": "YAML config file.", "zh": "YAML 配置文件。"},
    "train.overrides": {"en": "key=value overrides.", "zh": "key=value 覆盖项。"},
    "launch.nproc": {
        "en": "Train with this many processes on this machine (one per GPU; on CPU, gloo), through torchrun.",
        "zh": "在本机用这么多个进程训练（每块 GPU 一个；CPU 上用 gloo），通过 torchrun 启动。",
    },
    "launch.nnodes": {
        "en": "Number of machines taking part (run the same command on each, with its own --node-rank).",
        "zh": "参与训练的机器数（每台机器运行同一命令，各用自己的 --node-rank）。",
    },
    "launch.node_rank": {
        "en": "This machine's index, 0 .. nnodes-1 (node 0 hosts the rendezvous).",
        "zh": "本机序号，0 .. nnodes-1（0 号节点负责汇合）。",
    },
    "launch.master_addr": {
        "en": "Address of node 0, reachable from every node (default 127.0.0.1 on one machine).",
        "zh": "0 号节点的地址，所有节点都须能访问（单机默认 127.0.0.1）。",
    },
    "launch.master_port": {
        "en": "Free TCP port on node 0 for the rendezvous (default on one machine: any free port).",
        "zh": "0 号节点上用于汇合的空闲 TCP 端口（单机默认任选空闲端口）。",
    },
    "train.print_config": {
        "en": "Print the resolved config (every default filled) and exit.",
        "zh": "打印解析后的完整配置（含全部默认值）后退出。",
    },
    "train.help_keys": {
        "en": "List every config key with its help text and exit.",
        "zh": "列出所有配置项及其说明后退出。",
    },
    "data": {
        "en": "Inspect datasets; prepare distillation data (teacher logits, teacher answers, student init).",
        "zh": "查看数据集；准备蒸馏数据（教师 logits、教师回答、学生初始化）。",
    },
    "data.preview": {
        "en": "Show N formatted, tokenized samples with the masked part marked, and token-length statistics.",
        "zh": "显示 N 条格式化并分词后的样本（标出被掩码部分），以及 token 长度统计。",
    },
    "data.n": {"en": "Number of samples to show.", "zh": "显示的样本数。"},
    "data.check": {
        "en": "Check the config's datasets: malformed/empty records, exact and near duplicates, conflicting "
        "answers, eval/test leaks into train, lengths beyond cutoff_len, script mix. Writes report.json and "
        "histograms; exits 1 when it finds problems.",
        "zh": "检查配置中的数据集：格式错误/空记录、完全与近似重复、相互矛盾的回答、评估/测试数据泄漏到训练集、"
        "超过 cutoff_len 的长度、文字分布。写出 report.json 与直方图；发现问题时退出码为 1。",
    },
    "data.check.out": {"en": "Folder for report.json and the plots.", "zh": "report.json 与图表的输出目录。"},
    "data.near_threshold": {
        "en": "Near-duplicate threshold: estimated Jaccard similarity of 3-word shingles (MinHash LSH).",
        "zh": "近似重复阈值：3 词片段的估计 Jaccard 相似度（MinHash LSH）。",
    },
    "data.fail_on": {
        "en": "Problem kinds that make the check exit 1 (comma-separated; add too_long to fail on cut records).",
        "zh": "导致检查退出码为 1 的问题类型（逗号分隔；加入 too_long 则被截断的记录也算失败）。",
    },
    "data.no_tokens": {
        "en": "Skip the tokenizer: no length distribution and no too_long findings.",
        "zh": "不加载分词器：不统计长度，也不报告 too_long。",
    },
    "data.clean": {
        "en": "Write cleaned copies of the config's datasets (same formats, with a dataset_info.json) and "
        "removed.jsonl saying why each record left.",
        "zh": "写出清洗后的数据集副本（格式不变，附 dataset_info.json），并在 removed.jsonl 中说明每条记录被删除的原因。",
    },
    "data.clean.out": {"en": "Output folder for the cleaned copies.", "zh": "清洗后副本的输出目录。"},
    "data.clean.streaming": {
        "en": "One pass over files larger than memory (no val_size leak check, no too_long; ~0.5 KB per record).",
        "zh": "对放不进内存的文件单遍处理（不检查 val_size 划分的泄漏，不处理 too_long；每条记录约 0.5 KB 内存）。",
    },
    "data.select": {
        "en": "Score the training records with the model (ifd = answer loss with the prompt / without it; "
        "perplexity; length) and keep the best share, written in the input's format. Resumable.",
        "zh": "用模型为训练记录打分（ifd = 有提示时回答的损失 / 无提示时的损失；困惑度；长度），"
        "保留得分最好的一部分，按原格式写出。可断点续跑。",
    },
    "data.select.out": {
        "en": "Output folder (kept data, scores.jsonl, dataset_info.json).",
        "zh": "输出目录（保留的数据、scores.jsonl、dataset_info.json）。",
    },
    "data.select.by": {
        "en": "Score: ifd, perplexity or length.",
        "zh": "打分方式：ifd、perplexity 或 length。",
    },
    "data.select.keep": {
        "en": "Share to keep (0-1) or a count (>= 1).",
        "zh": "保留的比例（0-1）或条数（>= 1）。",
    },
    "data.select.prefer": {
        "en": "Keep the highest or lowest scores (default: high for ifd and length, low for perplexity).",
        "zh": "保留最高或最低分（默认：ifd 与 length 取高，perplexity 取低）。",
    },
    "data.select.batch_size": {"en": "Records per forward pass.", "zh": "每次前向计算的记录数。"},
    "data.augment": {
        "en": "Add augmented copies of the training records (paraphrase / back_translate by a model, eda for "
        "classification), each marked with its origin; eval records are split off first and never augmented.",
        "zh": "为训练记录生成增强副本（由模型改写 paraphrase / 回译 back_translate，分类数据可用 eda），"
        "每条标明来源；评估记录先被划出，绝不参与增强。",
    },
    "data.augment.out": {
        "en": "Output folder (data, dataset_info.json, progress).",
        "zh": "输出目录（数据、dataset_info.json、进度）。",
    },
    "data.augment.method": {
        "en": "paraphrase, back_translate or eda.",
        "zh": "paraphrase、back_translate 或 eda。",
    },
    "data.augment.n": {"en": "New copies per record.", "zh": "每条记录生成的新副本数。"},
    "data.augment.model": {
        "en": "Local model that rewrites (default: the config's model).",
        "zh": "执行改写的本地模型（默认：配置中的模型）。",
    },
    "data.augment.api_base": {
        "en": "OpenAI-compatible endpoint that rewrites instead (e.g. http://127.0.0.1:8000/v1); key from OPENAI_API_KEY.",
        "zh": "改用兼容 OpenAI 的接口进行改写（如 http://127.0.0.1:8000/v1）；密钥取自 OPENAI_API_KEY。",
    },
    "data.augment.api_model": {
        "en": "Model name at the endpoint (default: its first model).",
        "zh": "接口上的模型名（默认：其第一个模型）。",
    },
    "data.drop": {
        "en": "What to remove: malformed, empty, exact, near, conflicts, chosen_eq_rejected, contaminated, "
        "too_long (comma-separated, or all).",
        "zh": "要删除的类型：malformed、empty、exact、near、conflicts、chosen_eq_rejected、contaminated、"
        "too_long（逗号分隔，或 all）。",
    },
    "data.teacher_logits": {
        "en": "Run the kd teacher once over the config's data and store its top-k log-probs per response "
        "token (resumable); train from them with kd_teacher_cache=DIR.",
        "zh": "用 kd 教师模型把配置中的数据跑一遍，保存每个回复 token 的 top-k 对数概率（可续跑）；"
        "之后用 kd_teacher_cache=DIR 训练。",
    },
    "data.cache_dir": {"en": "Directory of the teacher cache.", "zh": "教师缓存目录。"},
    "data.topk": {
        "en": "Teacher tokens kept per position (default: kd_topk, else 32).",
        "zh": "每个位置保留的教师 token 数（默认 kd_topk，否则 32）。",
    },
    "data.distill": {
        "en": "Sequence-level distillation: the teacher answers the config's prompts; writes an sft dataset "
        "file registered in a dataset_info.json beside it.",
        "zh": "序列级蒸馏：由教师模型回答配置中数据集的提示，写出 sft 数据文件并登记到同目录的 dataset_info.json。",
    },
    "data.distill_file": {"en": "Output .json file.", "zh": "输出的 .json 文件。"},
    "data.api_base": {
        "en": "Ask an OpenAI-compatible server (e.g. http://127.0.0.1:8000/v1) instead of loading the teacher.",
        "zh": "改为请求 OpenAI 兼容服务（如 http://127.0.0.1:8000/v1），而不是加载教师模型。",
    },
    "data.api_model": {"en": "Model name sent to the server.", "zh": "发送给服务的模型名。"},
    "data.api_key": {
        "en": "API key for the server (env OPENAI_API_KEY).",
        "zh": "服务的 API 密钥（环境变量 OPENAI_API_KEY）。",
    },
    "data.batch_size": {"en": "Prompts generated at once.", "zh": "一次生成的提示数。"},
    "data.init_student": {
        "en": "Build a shallower student from the teacher's own layers (kd_student_init or --layers) and save "
        "it as a model directory.",
        "zh": "用教师模型自身的层构造更浅的学生模型（kd_student_init 或 --layers），保存为模型目录。",
    },
    "data.student_dir": {"en": "Directory to write the student model to.", "zh": "学生模型的输出目录。"},
    "data.layers": {
        "en": "Layers to keep: every_other_layer or first_n:K (default: kd_student_init).",
        "zh": "保留的层：every_other_layer 或 first_n:K（默认 kd_student_init）。",
    },
    "env": {
        "en": "Show versions of tunelab and its libraries, and the devices found.",
        "zh": "显示 tunelab 及依赖库的版本和检测到的设备。",
    },
    "version": {"en": "Print tunelab's version.", "zh": "打印 tunelab 的版本号。"},
    "expand_model": {
        "en": "LLaMA Pro: write a copy of a model with --num-expand identity-initialised decoder blocks "
        "added; train it with use_llama_pro: true and freeze_trainable_layers: <num-expand>.",
        "zh": "LLaMA Pro：写出一个新增 --num-expand 个恒等初始化解码块的模型副本；"
        "用 use_llama_pro: true 和 freeze_trainable_layers: <num-expand> 训练它。",
    },
    "expand_model.model": {
        "en": "Model to expand (a local directory or tiny:<preset>).",
        "zh": "要扩展的模型（本地目录或 tiny:<预设>）。",
    },
    "expand_model.output": {
        "en": "Directory to write the expanded model to.",
        "zh": "扩展后模型的输出目录。",
    },
    "expand_model.num": {
        "en": "Number of blocks to add (must divide the layer count).",
        "zh": "新增块数（须整除层数）。",
    },
    "demo": {
        "en": "Fine-tune the real SmolLM2-135M-Instruct on tunelab's identity data and show before/after.",
        "zh": "在 tunelab 身份数据上微调真实的 SmolLM2-135M-Instruct，并展示训练前后的对比。",
    },
    "demo.steps": {"en": "Optimizer steps to train.", "zh": "训练的优化步数。"},
    "demo.output": {"en": "Run directory.", "zh": "运行目录。"},
    "export": {
        "en": "Export a trained model for plain transformers: merge LoRA into the base weights (or copy a "
        "full model), pick the dtype, shard (export_size GB), optionally quantize (export_quantization_bit "
        "with bnb, or gptq calibrated on export_quantization_dataset; export_device=auto uses a GPU), then "
        "verify its logits against the source (e.g. tunelab export --run runs/sft-lora-tiny export_size=2).",
        "zh": "导出可被原生 transformers 直接加载的模型：把 LoRA 合并进基座权重（或复制全量模型），"
        "选择数据类型、按 export_size（GB）分片，可选量化（export_quantization_bit，bnb，或用 "
        "export_quantization_dataset 校准的 gptq；export_device=auto 使用 GPU），然后与源模型对比 logits 进行校验"
        "（如 tunelab export --run runs/sft-lora-tiny export_size=2）。",
    },
    "export.push": {
        "en": "Push the verified export to this Hugging Face Hub repo (owner/name; the same as "
        "export_hub_model_id=REPO). Needs HF_TOKEN (or `hf auth login`) and network.",
        "zh": "把校验通过的导出推送到此 Hugging Face Hub 仓库（owner/name；等同于 export_hub_model_id=REPO）。"
        "需要 HF_TOKEN（或 `hf auth login`）和网络。",
    },
    "export.private": {
        "en": "Create the Hub repo as private when it does not exist yet.",
        "zh": "Hub 仓库尚不存在时，创建为私有仓库。",
    },
    "api": {
        "en": "Serve a model over an OpenAI-compatible HTTP API (/v1/models, /v1/chat/completions, "
        "/v1/completions); set TUNELAB_API_KEY to require a Bearer key.",
        "zh": "以兼容 OpenAI 的 HTTP API 提供模型服务（/v1/models、/v1/chat/completions、"
        "/v1/completions）；设置环境变量 TUNELAB_API_KEY 后需要 Bearer 密钥。",
    },
    "api.host": {
        "en": "Address to bind; 127.0.0.1 keeps the server local, 0.0.0.0 exposes it to the network.",
        "zh": "绑定的地址；127.0.0.1 仅本机可访问，0.0.0.0 向网络公开。",
    },
    "api.port": {"en": "TCP port to listen on.", "zh": "监听的 TCP 端口。"},
    "api.model_name": {
        "en": "Model id clients use in requests (default: the run or model directory name).",
        "zh": "客户端请求中使用的模型 id（默认：运行目录或模型目录名）。",
    },
    "api.max_batch_size": {
        "en": "Most requests decoded together in one batch (1 = one at a time).",
        "zh": "同一批中一起解码的最多请求数（1 = 逐个处理）。",
    },
    "api.max_waiting": {
        "en": "Most requests waiting for a batch slot; beyond it the server answers 429 with Retry-After.",
        "zh": "等待批次空位的最多请求数；超过时返回 429 并附 Retry-After。",
    },
    "api.max_input_tokens": {
        "en": "Longest prompt accepted, in tokens (default: the model's context); longer: 400 context_length_exceeded.",
        "zh": "接受的最长提示（token 数，默认为模型上下文长度）；更长时返回 400 context_length_exceeded。",
    },
    "api.request_timeout": {
        "en": "Seconds a request may take before it is stopped (504); default: no limit.",
        "zh": "请求最长耗时（秒），超时即停止并返回 504；默认不限。",
    },
    "api.max_body_bytes": {
        "en": "Largest request body, in bytes; larger bodies get 413 before they are read.",
        "zh": "请求体的最大字节数；更大的请求体在读取前即返回 413。",
    },
    "api.accept_any_model": {
        "en": "Answer requests whatever their `model` name (LLaMA-Factory's behaviour); default: 404 model_not_found.",
        "zh": "无论请求中的 `model` 名称为何都应答（LLaMA-Factory 的行为）；默认返回 404 model_not_found。",
    },
    "api.log_prompts": {
        "en": "Write the prompt text into the access log (off by default: prompts may be private).",
        "zh": "在访问日志中记录提示文本（默认关闭：提示可能涉及隐私）。",
    },
    "api.public_docs": {
        "en": "Serve /docs and /openapi.json without the API key.",
        "zh": "无需 API 密钥即可访问 /docs 和 /openapi.json。",
    },
    "eval": {
        "en": "Evaluate a model: loss/perplexity on the eval split, generated answers with BLEU/ROUGE "
        "(--predict), a multiple-choice benchmark (--task tunelab_mc), and before vs after with --compare "
        "(e.g. tunelab eval runs/sft-lora-tiny --compare base --predict).",
        "zh": "评估模型：评估集上的损失/困惑度、生成回答并计算 BLEU/ROUGE（--predict）、多项选择基准"
        "（--task tunelab_mc），以及用 --compare 做训练前后对比"
        "（如 tunelab eval runs/sft-lora-tiny --compare base --predict）。",
    },
    "eval.config": {
        "en": "YAML config file, or a run directory (runs/<name>).",
        "zh": "YAML 配置文件，或运行目录（runs/<名称>）。",
    },
    "eval.compare": {
        "en": "Reference to compare with: 'base' (the model before fine-tuning), a run directory, "
        "a YAML config or a model directory.",
        "zh": "对比的参照：'base'（微调前的模型）、运行目录、YAML 配置或模型目录。",
    },
    "eval.predict": {
        "en": "Generate answers for the eval split and score BLEU-4 / ROUGE (predict_with_generate=true).",
        "zh": "为评估集生成回答并计算 BLEU-4 / ROUGE（predict_with_generate=true）。",
    },
    "eval.task": {
        "en": "Multiple-choice benchmark: a registered name (tunelab_mc) or a .csv/.json/.jsonl file or folder.",
        "zh": "多项选择基准：已登记的名称（tunelab_mc），或 .csv/.json/.jsonl 文件或目录。",
    },
    "eval.output": {
        "en": "Output directory (default <run>/eval-<time>, or runs/eval-<time>).",
        "zh": "输出目录（默认 <运行目录>/eval-<时间>，或 runs/eval-<时间>）。",
    },
    "chat": {
        "en": "Chat with a model in the terminal, answers streamed; /clear forgets the history, /exit quits "
        "(e.g. tunelab chat runs/sft-lora-tiny, or tunelab chat --model DIR --adapter DIR).",
        "zh": "在终端与模型对话，回答流式输出；/clear 清空历史，/exit 退出"
        "（如 tunelab chat runs/sft-lora-tiny，或 tunelab chat --model 目录 --adapter 目录）。",
    },
    "chat.system": {"en": "System prompt for the conversation.", "zh": "对话使用的系统提示词。"},
    "src.model": {
        "en": "Model directory, .gguf file, smollm2 or tiny:<preset> (replaces model_name_or_path).",
        "zh": "模型目录、.gguf 文件、smollm2 或 tiny:<预设>（替换 model_name_or_path）。",
    },
    "src.adapter": {
        "en": "LoRA adapter directory (or comma-separated list) to load on top of the model.",
        "zh": "加载到模型之上的 LoRA 适配器目录（或逗号分隔的列表）。",
    },
    "src.run": {
        "en": "Run directory (runs/<name>, or its checkpoint-N): its config.yaml plus the weights it trained.",
        "zh": "运行目录（runs/<名称> 或其 checkpoint-N）：使用其 config.yaml 和训练得到的权重。",
    },
    "src.template": {
        "en": "Chat template name (default: the config's, else the tokenizer's own).",
        "zh": "对话模板名（默认：配置中的模板，否则用分词器自带的模板）。",
    },
    "debug": {"en": "Show full tracebacks on errors.", "zh": "出错时显示完整的调用栈。"},
    "sweep": {
        "en": "Run a hyperparameter sweep: a grid (--grid learning_rate=1e-4,3e-4 lora_rank=8,16), 0.3x/1x/3x "
        "around current values (--around learning_rate) or random draws from the tune: space (--random N); "
        "every trial is a run directory inside the study directory, ranked in a table and plots.",
        "zh": "运行超参数扫描：网格（--grid learning_rate=1e-4,3e-4 lora_rank=8,16）、围绕当前值取 0.3/1/3 倍"
        "（--around learning_rate），或从 tune: 搜索空间随机抽样（--random N）；每个试验都是研究目录中的一个运行目录，"
        "并以表格和图表排名。",
    },
    "sweep.grid": {
        "en": "Grid axis key=v1,v2,... (repeatable; further key=a,b items after it are axes too).",
        "zh": "网格轴 key=v1,v2,...（可重复；其后的 key=a,b 项也视为网格轴）。",
    },
    "sweep.around": {
        "en": "Try 0.3x, 1x and 3x the config's value of this key (repeatable, or comma-separated).",
        "zh": "尝试该键当前值的 0.3 倍、1 倍和 3 倍（可重复，或用逗号分隔）。",
    },
    "sweep.random": {
        "en": "Run N random draws from the tune: space instead of a grid.",
        "zh": "从 tune: 搜索空间随机抽取 N 组参数运行，而不是网格。",
    },
    "study.dir": {
        "en": "Study directory (default: runs/<sweep|tune>-<config name>); running again there continues the study.",
        "zh": "研究目录（默认 runs/<sweep|tune>-<配置名>）；在同一目录再次运行会继续该研究。",
    },
    "study.nproc": {
        "en": "Each trial trains with this many processes on this machine (torchrun; trials then run to their end, unpruned).",
        "zh": "每个试验在本机用这么多个进程训练（torchrun；此时试验会跑完，不被剪枝）。",
    },
    "study.workers": {
        "en": "Trials run in parallel by this many local worker processes (default: tune.n_workers, 1).",
        "zh": "由这么多个本地工作进程并行运行试验（默认 tune.n_workers，即 1）。",
    },
    "tune": {
        "en": "Search hyperparameters with Optuna (TPE by default) over the tune: space, pruning unpromising "
        "trials from their evaluations; resumable; writes best.yaml ready for `tunelab train`, trials.csv and plots.",
        "zh": "用 Optuna 搜索超参数（默认 TPE，搜索空间见配置的 tune: 组），依据中间评估剪掉没有希望的试验；可续跑；"
        "输出可直接用于 `tunelab train` 的 best.yaml、trials.csv 和图表。",
    },
    "tune.n_trials": {
        "en": "Trials the study should hold in total (default: tune.n_trials).",
        "zh": "研究总共应包含的试验数（默认 tune.n_trials）。",
    },
    "tune.timeout": {
        "en": "Stop starting new trials after this many seconds.",
        "zh": "超过该秒数后不再开始新试验。",
    },
    "tune.storage": {
        "en": "Optuna storage URL shared by workers (default: SQLite in the study directory), e.g. "
        "postgresql://user:pw@host/db.",
        "zh": "各工作进程共享的 Optuna 存储 URL（默认研究目录中的 SQLite），如 postgresql://user:pw@host/db。",
    },
    "tune.show_space": {
        "en": "Print the search space (the config's tune.space or the default one) as YAML and exit.",
        "zh": "以 YAML 打印搜索空间（配置中的 tune.space 或默认空间）后退出。",
    },
    "runs": {"en": "List, compare and plot run directories.", "zh": "列出、比较运行目录并绘图。"},
    "runs.list": {
        "en": "Table of the runs under DIR (default runs/), trials of studies included: status, stage, model, "
        "steps, final losses, when.",
        "zh": "列出 DIR（默认 runs/）下的运行（含研究中的试验）：状态、阶段、模型、步数、最终损失和时间。",
    },
    "runs.dir": {"en": "Folder holding run directories.", "zh": "存放运行目录的文件夹。"},
    "runs.compare": {
        "en": "Compare runs: final metrics side by side, the config keys that differ, and overlaid loss curves.",
        "zh": "比较多个运行：并列的最终指标、不同的配置项，以及叠加的损失曲线。",
    },
    "runs.runs": {"en": "Run directories.", "zh": "运行目录。"},
    "runs.plot_path": {
        "en": "Where to write the overlay plot (default: compare_loss.png beside the runs).",
        "zh": "叠加曲线图的保存路径（默认保存在这些运行旁的 compare_loss.png）。",
    },
    "runs.plot": {
        "en": "Redraw a run's plots (loss, learning rate, gradient norm) from its trainer_log.jsonl.",
        "zh": "根据 trainer_log.jsonl 重新绘制运行的图表（损失、学习率、梯度范数）。",
    },
    "runs.run": {"en": "Run directory.", "zh": "运行目录。"},
    "webui": {
        "en": "Start the web UI (train, tune, evaluate, chat, export, compare runs in the browser).",
        "zh": "启动 Web 界面（在浏览器中训练、调参、评估、对话、导出和比较运行）。",
    },
    "webui.host": {
        "en": "Address to bind; anything but loopback needs --auth.",
        "zh": "绑定的地址；非本机回环地址时必须设置 --auth。",
    },
    "webui.port": {"en": "Port to serve on.", "zh": "服务端口。"},
    "webui.auth": {"en": "Require this user:password to log in.", "zh": "登录所需的 用户名:密码。"},
    "webui.runs_dir": {
        "en": "Folder of run directories the UI lists and writes.",
        "zh": "界面列出和写入运行目录的文件夹。",
    },
    "webui.allow": {
        "en": "Extra folder that path fields may point into (repeatable).",
        "zh": "路径字段允许访问的额外文件夹（可重复）。",
    },
    "webui.lang": {"en": "Initial UI language: en or zh.", "zh": "界面初始语言：en 或 zh。"},
    "advise": {
        "en": "Recommend hyperparameters for a config from its task, model size, data and hardware, one reason per "
        "value; -o writes them as a YAML ready for train.",
        "zh": "根据任务、模型大小、数据和硬件为配置推荐超参数，每个值附一条依据；-o 写出可直接训练的 YAML。",
    },
    "advise.task": {
        "en": "Task: classification, dialogue, code, instruction or preference (default: from the stage).",
        "zh": "任务类型：classification、dialogue、code、instruction 或 preference（默认由 stage 推断）。",
    },
    "advise.measure": {
        "en": "Also run the LR range test on the advised config and combine its suggestion with the recipe's "
        "learning rate (precision-weighted in log space); a study of this config still overrides both.",
        "zh": "同时在推荐配置上运行学习率范围测试，并与推荐规则的学习率合并（对数尺度按精度加权）；"
        "若本配置已有超参搜索，以其结果为准。",
    },
    "advise.measure_steps": {
        "en": "Optimizer steps of the range test (--measure).",
        "zh": "范围测试的优化步数（--measure）。",
    },
    "advise.lr_dir": {
        "en": "Folder for lr_answer.json (the learning rate, its source and every source) and, with --measure, "
        "lr_find.png / lr_find.json (default: runs/lr-find-<time>, no lr_answer.json).",
        "zh": "lr_answer.json（学习率、来源及各来源数值）的保存目录；配合 --measure 时也保存 lr_find.png / "
        "lr_find.json（默认 runs/lr-find-<时间>，不写 lr_answer.json）。",
    },
    "advise.study": {
        "en": "A sweep/tune study folder whose best learning rate answers (default: the newest study of this "
        "config in runs/ or beside output_dir).",
        "zh": "以该 sweep/tune 研究目录的最佳学习率为准（默认：runs/ 或 output_dir 旁本配置最新的研究）。",
    },
    "advise.output": {
        "en": "Write the recommended config (your keys plus the advice, with comments) to this YAML file.",
        "zh": "把推荐配置（你的配置项加上建议值及注释）写入该 YAML 文件。",
    },
    "hw.gpu_mem": {
        "en": "Plan for a GPU with this many GiB instead of this machine.",
        "zh": "按具有该 GiB 显存的 GPU 规划，而不是本机。",
    },
    "hw.model_config": {
        "en": "Use a published architecture instead of the config's model (llama2-7b, llama3-8b, qwen2.5-7b, "
        "chatglm3-6b, ...).",
        "zh": "使用已发布的模型结构而不是配置中的模型（llama2-7b、llama3-8b、qwen2.5-7b、chatglm3-6b 等）。",
    },
    "hw.nproc_per_node": {
        "en": "Processes (devices) per node that train together: memory is per device, for DDP or the config's deepspeed/fsdp.",
        "zh": "每个节点上共同训练的进程（设备）数：显存按单个设备计算，对应 DDP 或配置中的 deepspeed/fsdp。",
    },
    "hw.nnodes": {
        "en": "Number of nodes (machines) that train together.",
        "zh": "共同训练的节点（机器）数。",
    },
    "estimate": {
        "en": "Estimate training memory (weights, gradients, optimizer states, activations) and whether it fits; "
        "time per epoch from a few real steps on this machine.",
        "zh": "估算训练显存（权重、梯度、优化器状态、激活值）及能否放下；用本机上几步真实训练测出每轮耗时。",
    },
    "estimate.no_probe": {
        "en": "Skip the measured steps (memory arithmetic only).",
        "zh": "跳过实测步骤（只做显存计算）。",
    },
    "estimate.probe_steps": {"en": "Training steps timed by the probe.", "zh": "实测计时的训练步数。"},
    "estimate.json": {"en": "Print the numbers as JSON.", "zh": "以 JSON 输出数值。"},
    "find_batch": {
        "en": "Find the largest micro-batch that fits by running real training steps on the longest sequence "
        "the data produces (doubling, then binary search); size the eval batch separately.",
        "zh": "在数据能产生的最长序列上运行真实训练步，找出放得下的最大微批（先倍增再二分）；单独确定评估批大小。",
    },
    "find_batch.target": {
        "en": "Effective batch to reach with accumulation (default: the config's).",
        "zh": "通过梯度累积要达到的有效批大小（默认取配置中的值）。",
    },
    "find_batch.max_mem": {
        "en": "Memory ceiling in GiB for the run's tensors (default: the device's memory, or free RAM on a CPU).",
        "zh": "运行中张量内存的上限，单位 GiB（默认：设备显存，CPU 上为可用内存）。",
    },
    "find_batch.max_batch": {
        "en": "Largest micro-batch to probe (default: the per-device target batch).",
        "zh": "探测的最大微批（默认：每个设备的目标批大小）。",
    },
    "find_batch.max_eval_batch": {
        "en": "Largest eval batch to probe (default: 4 x --max-batch).",
        "zh": "探测的最大评估批大小（默认：4 × --max-batch）。",
    },
    "find_batch.seq_len": {
        "en": "Probe at this many tokens instead of the data's longest row (e.g. cutoff_len for future data).",
        "zh": "以该 token 数代替数据中最长的行进行探测（例如为将来的数据取 cutoff_len）。",
    },
    "find_batch.output": {
        "en": "Write the config with the batch sizes found to this YAML file.",
        "zh": "把带有探测结果批大小的配置写入该 YAML 文件。",
    },
    "lr_find": {
        "en": "Learning-rate range test: ramp the learning rate exponentially on a copy of the model, stop on "
        "divergence, suggest a learning rate and plot lr_find.png.",
        "zh": "学习率范围测试：在模型副本上按指数增大学习率，发散时停止，给出建议学习率并绘制 lr_find.png。",
    },
    "lr_find.start": {"en": "First learning rate of the ramp.", "zh": "起始学习率。"},
    "lr_find.end": {"en": "Last learning rate of the ramp.", "zh": "结束学习率。"},
    "lr_find.steps": {"en": "Optimizer steps of the ramp.", "zh": "学习率递增的优化步数。"},
    "lr_find.output_dir": {
        "en": "Folder for lr_find.png and lr_find.json (default runs/lr-find-<time>).",
        "zh": "lr_find.png 和 lr_find.json 的保存目录（默认 runs/lr-find-<时间>）。",
    },
    "lr_find.output": {
        "en": "Write the config with the suggested learning_rate to this YAML file.",
        "zh": "把带有建议 learning_rate 的配置写入该 YAML 文件。",
    },
    "written": {"en": "written", "zh": "已写入"},
    "lang": {"en": "Language of help texts: en or zh.", "zh": "说明文字的语言：en 或 zh。"},
    "hint": {"en": "hint", "zh": "提示"},
    "error": {"en": "error", "zh": "错误"},
}


def cli_lang() -> str:
    """'zh' when TUNELAB_LANG or LANG asks for Chinese, else 'en'."""
    wanted = os.environ.get("TUNELAB_LANG") or os.environ.get("LANG", "")
    return "zh" if wanted.lower().startswith("zh") else "en"


def t(key: str, lang: str | None = None) -> str:
    """The text ``key`` in ``lang`` (default: the CLI language)."""
    return TEXTS[key][lang or cli_lang()]
