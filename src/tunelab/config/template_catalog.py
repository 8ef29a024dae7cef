"""The chat formats tunelab knows by name, as plain data (no torch, no tokenizer), so the config can check names.

Each entry holds the keyword arguments of a Template (``"kind": "reasoning"`` makes it a
ReasoningTemplate, see data/template_reasoning.py). Names are LLaMA-Factory's, so a LLaMA-Factory config's
``template:`` keeps its meaning; each format was written from the model's published chat template
(tokenizer_config.json / chat_template.jinja), and tests/data/test_template_families.py renders a
conversation through both and compares them. Slot syntax: see data/template_format.py.
"""

from __future__ import annotations

import difflib
from typing import Any

__all__ = ["FORMATS", "TEMPLATE_NAMES", "unknown_template_hint"]


def _chatml(**extra: Any) -> dict[str, Any]:
    """ChatML (<|im_start|>role ... <|im_end|>), the format of Qwen, Yi, InternLM2, SmolLM and many more."""
    spec: dict[str, Any] = {
        "user": "<|im_start|>user\n{content}<|im_end|>\n<|im_start|>assistant\n",
        "assistant": "{content}<|im_end|>\n",
        "system": "<|im_start|>system\n{content}<|im_end|>\n",
        "observation": "<|im_start|>tool\n{content}<|im_end|>\n<|im_start|>assistant\n",
        "stop_words": ("<|im_end|>",),
        "required_tokens": ("<|im_start|>", "<|im_end|>"),
    }
    return {**spec, **extra}


# Qwen's tool use: results come back as a user turn wrapped in <tool_response>, calls in <tool_call>.
_QWEN_TOOLS: dict[str, Any] = {
    "observation": "<|im_start|>user\n<tool_response>\n{content}\n</tool_response><|im_end|>\n<|im_start|>assistant\n",
    "function": "<tool_call>\n{content}\n</tool_call><|im_end|>\n",
    "tool_format": "qwen",
}


def _llama3(header_start: str, header_end: str, end: str) -> dict[str, Any]:
    """Llama 3 / Llama 4: role headers, each turn closed by the end-of-turn token."""

    def turn(role: str, then_assistant: bool = False) -> str:
        open_assistant = f"{header_start}assistant{header_end}\n\n" if then_assistant else ""
        return f"{header_start}{role}{header_end}\n\n{{content}}{end}" + open_assistant

    return {
        "prefix": "<|begin_of_text|>",
        "system": turn("system"),
        "user": turn("user", then_assistant=True),
        "assistant": "{content}" + end,
        "observation": turn("ipython", then_assistant=True),
        "required_tokens": ("<|begin_of_text|>", header_start, header_end, end),
    }


def _gemma(**extra: Any) -> dict[str, Any]:
    """Gemma 1/2/3: <start_of_turn>user|model; the system prompt is glued to the first user message."""
    spec: dict[str, Any] = {
        "prefix": "{bos}",
        "user": "<start_of_turn>user\n{content}<end_of_turn>\n<start_of_turn>model\n",
        "assistant": "{content}<end_of_turn>\n",
        "system": "{content}\n\n",
        "observation": "<start_of_turn>tool\n{content}<end_of_turn>\n<start_of_turn>model\n",
        "system_in_user": True,
        "stop_words": ("<end_of_turn>",),
        "required_tokens": ("<start_of_turn>", "<end_of_turn>"),
    }
    return {**spec, **extra}


def _glm4(**extra: Any) -> dict[str, Any]:
    """GLM-4: <|role|> tokens with no closing tag; a response ends where the next role token starts."""
    spec: dict[str, Any] = {
        "prefix": "[gMASK]<sop>",
        "user": "<|user|>\n{content}<|assistant|>",
        "assistant": "\n{content}",
        "system": "<|system|>\n{content}",
        "observation": "<|observation|>\n{content}<|assistant|>",
        "stop_words": ("<|user|>", "<|observation|>"),
        "efficient_eos": True,
        "required_tokens": ("[gMASK]", "<sop>", "<|system|>", "<|user|>", "<|assistant|>", "<|observation|>"),
    }
    return {**spec, **extra}


_DEEPSEEK3: dict[str, Any] = {
    "prefix": "{bos}",
    "user": "<｜User｜>{content}<｜Assistant｜>",
    "required_tokens": ("<｜User｜>", "<｜Assistant｜>"),
}
_INTERN_SYSTEM = (
    "You are an AI assistant whose name is InternLM (书生·浦语).\n"
    "- InternLM (书生·浦语) is a conversational language model that is developed by Shanghai AI Laboratory "
    "(上海人工智能实验室). It is designed to be helpful, honest, and harmless.\n"
    "- InternLM (书生·浦语) can understand and communicate fluently in the language chosen by the user "
    "such as English and 中文."
)
_VICUNA_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)
_MISTRAL_TOOLS: dict[str, Any] = {
    "function": "[TOOL_CALLS] {content}{eos}",
    "observation": '[TOOL_RESULTS] {"content": {content}}[/TOOL_RESULTS]',
}
_GRANITE: dict[str, Any] = {
    "user": "<|start_of_role|>user<|end_of_role|>{content}<|end_of_text|>\n<|start_of_role|>assistant<|end_of_role|>",
    "assistant": "{content}<|end_of_text|>\n",
    "system": "<|start_of_role|>system<|end_of_role|>{content}<|end_of_text|>\n",
    "required_tokens": ("<|start_of_role|>", "<|end_of_role|>", "<|end_of_text|>"),
}

FORMATS: dict[str, dict[str, Any]] = {
    # ---- generic formats for base models --------------------------------------------------------
    # "Human:/Assistant:" markup for models without a chat format of their own.
    "default": {
        "user": "Human: {content}{eos}\nAssistant:",
        "assistant": "{content}{eos}\n",
        "system": "System: {content}{eos}\n",
    },
    # No markup: prompt and response are concatenated; the response ends with EOS to stop generation.
    "empty": {},
    "alpaca": {
        "user": "### Instruction:\n{content}\n\n### Response:\n",
        "assistant": "{content}{eos}\n\n",
        "system": "{content}\n\n",
        "default_system": (
            "Below is an instruction that describes a task. Write a response that appropriately completes the request."
        ),
    },
    "vicuna": {"user": "USER: {content} ASSISTANT:", "default_system": _VICUNA_SYSTEM},
    # Few-shot continuation: examples separated by blank lines, only the very end learns EOS.
    "fewshot": {"assistant": "{content}\n\n", "efficient_eos": True},
    # ---- ChatML family ----------------------------------------------------------------------------
    "chatml": _chatml(),
    "qwen": _chatml(  # Qwen 1.5 - 2.5, QwQ
        **_QWEN_TOOLS, default_system="You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
    ),
    "qwen3": _chatml(**_QWEN_TOOLS, kind="reasoning"),  # Qwen3 (hybrid thinking)
    "qwen3_nothink": _chatml(**_QWEN_TOOLS),  # Qwen3-Instruct-2507, or Qwen3 trained without thinking
    # Qwen3.5: like Qwen3, but its generation prompt already opens the <think> block. Tool calls stay in
    # Qwen's JSON style (tools.py has no renderer for Qwen3.5's XML calls).
    "qwen3_5": _chatml(**_QWEN_TOOLS, kind="reasoning", open_in_prompt=True),
    "qwen3_5_nothink": _chatml(**_QWEN_TOOLS),
    "yi": _chatml(observation=None),
    "intern2": _chatml(prefix="{bos}", observation=None, default_system=_INTERN_SYSTEM),  # InternLM 2 - 3
    "smollm": _chatml(observation=None),
    # SmolLM2's own default system prompt, which has no final period (LLaMA-Factory's copy adds one).
    "smollm2": _chatml(
        observation=None,
        default_system="You are a helpful AI assistant named SmolLM, trained by Hugging Face",
    ),
    "cpm3": _chatml(prefix="{bos}"),  # MiniCPM 3
    "cpm4": _chatml(prefix="{bos}"),  # MiniCPM 4
    "falcon_h1": _chatml(prefix="{bos}", stop_words=("<|im_end|>", "<|end_of_text|>")),
    "opencoder": _chatml(default_system="You are OpenCoder, created by OpenCoder Team."),
    "mimo": _chatml(**_QWEN_TOOLS, kind="reasoning", default_system="You are a helpful assistant."),
    "phi4": {
        "user": "<|im_start|>user<|im_sep|>{content}<|im_end|><|im_start|>assistant<|im_sep|>",
        "assistant": "{content}<|im_end|>",
        "system": "<|im_start|>system<|im_sep|>{content}<|im_end|>",
        "stop_words": ("<|im_end|>",),
        "required_tokens": ("<|im_start|>", "<|im_sep|>", "<|im_end|>"),
    },
    # ---- Llama ------------------------------------------------------------------------------------
    "llama2": {
        "user": "{bos}[INST] {content} [/INST]",
        "system": "<<SYS>>\n{content}\n<</SYS>>\n\n",
        "system_in_user": True,
    },
    "llama3": {
        **_llama3("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"),
        "stop_words": ("<|eot_id|>", "<|eom_id|>"),
    },
    "llama4": {
        **_llama3("<|header_start|>", "<|header_end|>", "<|eot|>"),
        "stop_words": ("<|eot|>", "<|eom|>"),
    },
    # ---- Gemma ------------------------------------------------------------------------------------
    "gemma": _gemma(),
    # LLaMA-Factory's gemma2 also learns EOS after the last <end_of_turn>, so generation stops on either.
    "gemma2": _gemma(stop_words=("<eos>", "<end_of_turn>"), efficient_eos=True),
    "gemma3": _gemma(),
    # ---- Mistral ----------------------------------------------------------------------------------
    "mistral": {  # Mistral / Mixtral (tokenizer v3)
        "prefix": "{bos}",
        "user": "[INST] {content}[/INST]",
        "assistant": " {content}{eos}",
        "system": "{content}\n\n",
        "system_in_user": True,
        **_MISTRAL_TOOLS,
    },
    "ministral": {  # Ministral / Mistral-Nemo (tekken tokenizer: no spaces around [INST])
        "prefix": "{bos}",
        "user": "[INST]{content}[/INST]",
        "system": "{content}\n\n",
        "system_in_user": True,
        "function": "[TOOL_CALLS]{content}{eos}",
        "observation": '[TOOL_RESULTS]{"content": {content}}[/TOOL_RESULTS]',
    },
    "mistral_small": {  # Mistral Small 3 (tokenizer v7: a real system prompt)
        "prefix": "{bos}",
        "user": "[INST]{content}[/INST]",
        "system": "[SYSTEM_PROMPT]{content}[/SYSTEM_PROMPT]",
        "function": "[TOOL_CALLS]{content}{eos}",
        "observation": '[TOOL_RESULTS]{"content": {content}}[/TOOL_RESULTS]',
    },
    # ---- Phi --------------------------------------------------------------------------------------
    "phi": {  # Phi-3 / Phi-3.5
        "user": "<|user|>\n{content}<|end|>\n<|assistant|>\n",
        "assistant": "{content}<|end|>\n",
        "system": "<|system|>\n{content}<|end|>\n",
        "stop_words": ("<|end|>",),
        "required_tokens": ("<|user|>", "<|assistant|>", "<|end|>"),
    },
    # ---- DeepSeek ---------------------------------------------------------------------------------
    "deepseek": {"prefix": "{bos}", "user": "User: {content}\n\nAssistant:", "system": "{content}\n\n"},  # V2
    "deepseek3": dict(_DEEPSEEK3),  # V2.5 / V3
    "deepseekr1": {**_DEEPSEEK3, "kind": "reasoning", "open_in_prompt": True},  # R1 and its distills
    # ---- GLM --------------------------------------------------------------------------------------
    "chatglm3": {
        "prefix": "{token:[gMASK]}{token:sop}",
        "system": "{token:<|system|>}\n{content}",
        "user": "{token:<|user|>}\n{content}{token:<|assistant|>}",
        "assistant": "\n{content}",
        "observation": "{token:<|observation|>}\n{content}{token:<|assistant|>}",
        "stop_words": ("<|user|>", "<|observation|>"),
        "efficient_eos": True,
        "required_tokens": ("[gMASK]", "sop", "<|system|>", "<|user|>", "<|assistant|>", "<|observation|>"),
    },
    "glm4": _glm4(),
    # GLM-4.5: every response carries a <think></think> block, with the reasoning only in the last turn.
    "glm4_moe": _glm4(
        kind="reasoning",
        thought_open="<think>",
        thought_close="</think>\n",
        history_prefix="<think></think>\n",
    ),
    # ---- others -----------------------------------------------------------------------------------
    "baichuan2": {
        "user": "<reserved_106>{content}<reserved_107>",
        "assistant": "{content}",
        "efficient_eos": True,
        "required_tokens": ("<reserved_106>", "<reserved_107>"),
    },
    # gpt-oss (harmony format): the reasoning goes to the analysis channel, the answer to the final one.
    "gpt": {
        "kind": "reasoning",
        "user": "<|start|>user<|message|>{content}<|end|><|start|>assistant",
        "assistant": "{content}<|end|>",
        "system": "<|start|>system<|message|>{content}<|end|>",
        "default_system": "You are ChatGPT, a large language model trained by OpenAI.",
        "thought_open": "<|channel|>analysis<|message|>",
        "thought_close": "<|end|><|start|>assistant<|channel|>final<|message|>",
        "history_prefix": "<|channel|>final<|message|>",  # earlier answers keep only their final channel
        "efficient_eos": True,
        "required_tokens": ("<|start|>", "<|message|>", "<|end|>", "<|channel|>"),
    },
    "granite3": dict(_GRANITE),
    "granite4": {
        **_GRANITE,
        "function": "{content}<|end_of_text|>\n",
        "observation": "<|start_of_role|>tool<|end_of_role|>{content}<|end_of_text|>\n"
        "<|start_of_role|>assistant<|end_of_role|>",
        "stop_words": ("<|end_of_text|>",),
        "default_system": "You are Granite, developed by IBM. You are a helpful AI assistant.",
    },
    "cohere": {  # Command R / R+
        "prefix": "{bos}",
        "user": "<|START_OF_TURN_TOKEN|><|USER_TOKEN|>{content}<|END_OF_TURN_TOKEN|>"
        "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>",
        "system": "<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>{content}<|END_OF_TURN_TOKEN|>",
        "required_tokens": (
            "<|START_OF_TURN_TOKEN|>",
            "<|END_OF_TURN_TOKEN|>",
            "<|USER_TOKEN|>",
            "<|CHATBOT_TOKEN|>",
        ),
    },
    "exaone": {
        "user": "[|user|]{content}\n[|assistant|]",
        "assistant": "{content}{eos}\n",
        "system": "[|system|]{content}[|endofturn|]\n",
    },
    "hunyuan": {
        "prefix": "<|startoftext|>",
        "user": "{content}<|extra_0|>",
        "assistant": "{content}<|eos|>",
        "system": "{content}<|extra_4|>",
        "stop_words": ("<|eos|>",),
    },
    "moonlight": {
        "user": "<|im_user|>user<|im_middle|>{content}<|im_end|><|im_assistant|>assistant<|im_middle|>",
        "assistant": "{content}<|im_end|>",
        "system": "<|im_system|>system<|im_middle|>{content}<|im_end|>",
        "default_system": "You are a helpful assistant provided by Moonshot-AI.",
        "stop_words": ("<|im_end|>",),
        "required_tokens": ("<|im_user|>", "<|im_assistant|>", "<|im_middle|>", "<|im_end|>"),
    },
}
# LLaMA-Factory's earlier name for the gpt-oss format.
FORMATS["gpt_oss"] = FORMATS["gpt"]

TEMPLATE_NAMES: tuple[str, ...] = (*FORMATS, "tokenizer")
"""Every name the ``template`` key accepts; ``tokenizer`` renders the tokenizer's own chat template."""

# Model names people write where LLaMA-Factory expects a template name.
_MODEL_NAMES = {
    "qwen2": "qwen",
    "qwen2.5": "qwen",
    "qwen2_5": "qwen",
    "qwq": "qwen",
    "qwen3.5": "qwen3_5",
    "llama3.1": "llama3",
    "llama3.2": "llama3",
    "llama3.3": "llama3",
    "mixtral": "mistral",
    "phi3": "phi",
    "phi3.5": "phi",
    "deepseekv3": "deepseek3",
    "deepseek_r1": "deepseekr1",
    "internlm2": "intern2",
    "internlm3": "intern2",
    "intern3": "intern2",
    "gpt-oss": "gpt",
    "glm4.5": "glm4_moe",
}


def _squash(name: str) -> str:
    return "".join(c for c in name.lower() if c.isalnum())


def unknown_template_hint(name: str) -> str:
    """The hint for an unknown template name: the name meant (a model name, other separators), else close names."""
    same = [n for n in TEMPLATE_NAMES if _squash(n) == _squash(name)]
    close = [_MODEL_NAMES[name.lower()]] if name.lower() in _MODEL_NAMES else same
    if not close:
        close = difflib.get_close_matches(name, TEMPLATE_NAMES, n=2, cutoff=0.75)
    if not close:
        return f"known templates: {', '.join(TEMPLATE_NAMES)}"
    return f"did you mean {' or '.join(repr(n) for n in close)}? (the README lists every template)"
