"""Request bodies of the OpenAI-compatible API, validated with OpenAI's ranges, and the error body.

Fields a client may send that change nothing here (user, metadata, store, ...) are accepted and
ignored, as other OpenAI-compatible servers do. Fields whose meaning tunelab cannot honour (n > 1,
logprobs, tools, penalties other than 0, a JSON response_format) are rejected with a 400 that names
the field, instead of answering as if they had been applied.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "APIError",
    "ErrorResponse",
    "ChatMessage",
    "ChatRequest",
    "CompletionRequest",
    "check_supported",
    "error_body",
    "generation_kwargs",
    "message_text",
    "stop_list",
]


def error_body(message: str, type_: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    """OpenAI's error shape: {"error": {"message", "type", "param", "code"}}."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorResponse(BaseModel):
    """Every error the server answers (documented in /openapi.json for each status it can send)."""

    error: ErrorDetail


class APIError(Exception):
    """An error answered as an OpenAI-style JSON body with an HTTP status (and optional headers)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        type_: str = "invalid_request_error",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = error_body(message, type_, param, code)
        self.headers = headers


class _Request(BaseModel):
    model_config = ConfigDict(extra="allow", protected_namespaces=())


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[dict[str, Any]] | None = None


class _Sampling(_Request):
    """Generation fields shared by both endpoints (top_k and repetition_penalty as in vLLM)."""

    model: str = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=0)
    repetition_penalty: float | None = Field(None, gt=0)
    n: int | None = Field(None, ge=1)
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    stop: str | list[str] | None = None
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    logit_bias: dict[str, float] | None = None
    seed: int | None = None


class ChatRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool | None = None
    tools: list[dict[str, Any]] | None = None
    response_format: dict[str, Any] | None = None


class CompletionRequest(_Sampling):
    prompt: (
        Annotated[str, Field(min_length=1)]
        | Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]
    )
    echo: bool = False
    suffix: str | None = None
    logprobs: int | None = None
    best_of: int | None = Field(None, ge=1)


def _unsupported(field: str, why: str) -> APIError:
    return APIError(400, f"{field}: {why}", param=field, code="unsupported_parameter")


def check_supported(request: _Sampling) -> None:
    """Reject values tunelab cannot honour (see the module docstring)."""
    if (request.n or 1) > 1:
        raise _unsupported("n", "only n=1 is supported; send several requests for several answers")
    for name in ("presence_penalty", "frequency_penalty"):
        if getattr(request, name):
            raise _unsupported(name, "not supported; use repetition_penalty (> 1 discourages repeats)")
    if request.logit_bias:
        raise _unsupported("logit_bias", "not supported")
    if isinstance(request, ChatRequest):
        if request.logprobs:
            raise _unsupported("logprobs", "not supported")
        if request.tools:
            raise _unsupported("tools", "tool calling is not supported by this server")
        if request.response_format and request.response_format.get("type", "text") != "text":
            raise _unsupported("response_format", "only {'type': 'text'} is supported")
    if isinstance(request, CompletionRequest):
        if request.suffix:
            raise _unsupported("suffix", "not supported")
        if request.logprobs:
            raise _unsupported("logprobs", "not supported")
        if (request.best_of or 1) > 1:
            raise _unsupported("best_of", "only best_of=1 is supported")


def generation_kwargs(request: _Sampling) -> dict[str, Any]:
    """Engine keyword arguments (GenerationArgs names) for the request; unset fields keep the defaults.

    As in OpenAI's API a temperature above 0 samples and 0 is greedy; with no temperature the server's
    configured generation settings decide (greedy unless do_sample is set in the config). `seed` makes
    sampling repeatable: the same seed and settings give the same reply.
    """
    gen: dict[str, Any] = {
        "max_new_tokens": getattr(request, "max_completion_tokens", None) or request.max_tokens,
        "top_p": request.top_p,
        "top_k": request.top_k,
        "repetition_penalty": request.repetition_penalty,
        "seed": request.seed,
    }
    if request.temperature is not None:
        gen["temperature"] = request.temperature
        if request.temperature > 0:
            gen["do_sample"] = True
    return gen


def stop_list(stop: str | list[str] | None) -> list[str] | None:
    """OpenAI's `stop` (a string or up to 4 strings) as a list."""
    if stop is None:
        return None
    stops = [stop] if isinstance(stop, str) else list(stop)
    if len(stops) > 4:
        raise APIError(400, "stop: at most 4 stop sequences are allowed", param="stop")
    return [s for s in stops if s] or None


def message_text(message: ChatMessage, index: int) -> str:
    """The text of a message; content parts of type 'text' are joined, other types are refused."""
    content = message.content
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    texts = []
    for part in content:
        if part.get("type") != "text" or not isinstance(part.get("text"), str):
            raise APIError(
                400,
                f"messages[{index}].content: only text content parts are supported, got {part.get('type')!r}",
                param=f"messages[{index}].content",
            )
        texts.append(part["text"])
    return "".join(texts)
