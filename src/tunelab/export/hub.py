"""Push an exported model folder to the Hugging Face Hub (``export_hub_model_id``, as in LLaMA-Factory).

The push is huggingface_hub's own ``create_repo`` + ``upload_folder`` on the finished export, so the
Hub gets exactly the files that were verified. Without a token it refuses before any work; when the
Hub cannot be reached (no network, HF_HUB_OFFLINE, a wrong HF_ENDPOINT) the error keeps the export and
says how to push it later. The token comes from the caller, else from huggingface_hub (HF_TOKEN or a
saved ``hf auth login``); tunelab never writes it to a file.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from tunelab.errors import ConfigError, ResourceError

__all__ = ["has_hub_token", "push_export", "require_hub_token", "upload_command"]


def has_hub_token(token: str | None = None) -> bool:
    """Whether a push would have a token: ``token``, HF_TOKEN, or a saved login."""
    if token:
        return True
    from huggingface_hub import get_token

    return bool(get_token())


def upload_command(repo_id: str, export_dir: str | Path, *, private: bool | None = None) -> str:
    """The command that pushes ``export_dir`` later, by hand."""
    return f"hf upload {repo_id} {export_dir} ." + (" --private" if private else "")


def require_hub_token(repo_id: str, token: str | None = None) -> None:
    """ConfigError when there is no token to push ``repo_id`` with (checked before an export starts)."""
    if not has_hub_token(token):
        raise ConfigError(
            f"pushing to the Hub ({repo_id}) needs a Hugging Face token, and none is set",
            "set HF_TOKEN or paste a token (or run `hf auth login`); "
            "leave export_hub_model_id empty to export without pushing",
        )


def push_export(
    export_dir: str | Path, repo_id: str, *, private: bool | None = None, token: str | None = None
) -> str:
    """Create ``repo_id`` (if new) and upload ``export_dir`` into it; the commit's URL.

    ``private``: None keeps huggingface_hub's default (public, or the organisation's setting).
    """
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    require_hub_token(repo_id, token)
    api = HfApi(token=token or None)
    host = urlsplit(api.endpoint).netloc or api.endpoint
    later = f"the export is at {export_dir}; push it later with `{upload_command(repo_id, export_dir, private=private)}`"
    try:
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        commit = api.upload_folder(
            repo_id=repo_id,
            folder_path=str(export_dir),
            repo_type="model",
            commit_message="Upload model exported by tunelab",
        )
    except HfHubHTTPError as err:  # the Hub answered, and said no (bad token, no write access, ...)
        raise ResourceError(f"{host} refused the push to {repo_id}: {_reason(err)}", later) from err
    except _no_answer_errors() as err:  # no answer at all: refused, no route, DNS, timeout, offline mode
        raise ResourceError(f"could not reach {host}: {_reason(err)}", later) from err
    return str(getattr(commit, "commit_url", "") or f"{api.endpoint}/{repo_id}")


def _no_answer_errors() -> tuple[type[BaseException], ...]:
    """Transport failures of the HTTP client huggingface_hub uses (httpx2 from 2.0, httpx in 1.x)."""
    import importlib

    found: list[type[BaseException]] = [OSError]
    for name in ("httpx2", "httpx"):
        try:
            found.append(importlib.import_module(name).RequestError)
        except ImportError:
            continue
    return tuple(found)


def _reason(err: BaseException) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return text[:300]
