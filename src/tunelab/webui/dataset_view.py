"""The Train tab's data browser: upload a data file into dataset_dir, and page through raw records.

An upload is read and checked the way training will read it (data/files.py names the file and line of
bad JSON or CSV, data/registry.py's detect_attr tells alpaca / sharegpt / text / pairwise apart, and
data/formats.py converts every record), then copied into ``dataset_dir`` and registered in its
``dataset_info.json`` as LLaMA-Factory writes entries, so the CLI and LLaMA-Factory read it too. An
existing name is replaced only when the user ticks "replace". The browser shows any registered
dataset's raw records (bundled, an LLaMA-Factory data folder, or uploaded), a page at a time.
"""

from __future__ import annotations

import html
import json
import re
import shutil
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from tunelab.errors import ConfigError, DataError, TunelabError
from tunelab.webui.context import UIContext, message_html
from tunelab.webui.i18n import tr

__all__ = [
    "PAGE_SIZE",
    "UPLOAD_SUFFIXES",
    "RecordPage",
    "UploadCheck",
    "build_dataset_view",
    "check_upload",
    "page_html",
    "read_page",
    "save_upload",
]

PAGE_SIZE = 5
UPLOAD_SUFFIXES = (".json", ".jsonl", ".csv", ".parquet")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_REGISTRY = "dataset_info.json"


@dataclass(frozen=True)
class UploadCheck:
    """What an uploaded file holds, and the dataset_info.json entry that reads it (without file_name)."""

    path: Path
    n_records: int
    kind: str  # the stage whose records it makes: sft, pt, dpo, kto, ppo or cls
    entry: dict[str, Any] = field(default_factory=dict)
    columns: tuple[str, ...] = ()

    @property
    def formatting(self) -> str:
        return str(self.entry.get("formatting", "alpaca"))


def _entry(attr: Any) -> dict[str, Any]:
    """A dataset_info.json entry in LLaMA-Factory's spelling for a detected DatasetAttr."""
    entry: dict[str, Any] = {"formatting": "sharegpt" if attr.formatting == "openai" else attr.formatting}
    if attr.ranking:
        entry["ranking"] = True
    if attr.columns:
        entry["columns"] = dict(attr.columns)
    if attr.formatting == "openai":  # role/content messages: sharegpt with OpenAI's tags
        entry["tags"] = {
            key: attr.tag(key)
            for key in (
                "role_tag",
                "content_tag",
                "user_tag",
                "assistant_tag",
                "observation_tag",
                "function_tag",
                "system_tag",
            )
        }
    return entry


def _kinds(attr: Any) -> tuple[str, ...]:
    """The stages to try the records with, most likely first."""
    if attr.columns.get("prompt") == "text":
        return ("cls",) if "label" in attr.columns else ("pt",)
    if attr.ranking:
        return ("dpo",)
    if "kto_tag" in attr.columns:
        return ("kto",)
    return ("sft", "ppo")  # a conversation ending with the user's turn is a ppo prompt


def check_upload(path: str | Path) -> UploadCheck:
    """Read and check an uploaded data file; DataError naming the file and the line or record."""
    from tunelab.data.files import read_rows
    from tunelab.data.formats import to_records
    from tunelab.data.registry import detect_attr

    path = Path(path)
    name = path.name  # an upload keeps its own file name (in a temporary folder)
    if path.suffix.lower() not in UPLOAD_SUFFIXES:
        raise DataError(
            f"{name}: a {path.suffix or 'suffix-less'} file cannot be a dataset",
            f"upload a {', '.join(UPLOAD_SUFFIXES)} file",
        )
    rows = read_rows(path)
    if not rows:
        raise DataError(f"{name} holds no records", "upload a file with at least one record")
    attr = detect_attr(path, name=name)
    kinds = _kinds(attr)
    first_error: DataError | None = None
    for kind in kinds:
        try:
            to_records(rows, attr, kind, name, path)
        except DataError as err:
            first_error = first_error or err
            continue
        columns = tuple(sorted(set().union(*rows)))
        return UploadCheck(path, len(rows), kind, _entry(attr), columns)
    assert first_error is not None
    raise first_error


def save_upload(
    upload: str | Path, dataset_dir: str | Path, name: str, *, overwrite: bool = False
) -> tuple[Path, UploadCheck]:
    """Check ``upload``, copy it to ``dataset_dir/<name><suffix>`` and register ``name``; (file, check).

    Refuses the bundled folder, a malformed name, and (unless ``overwrite``) a name or file that
    already exists.
    """
    from tunelab.data.registry import load_registry, resolve_dataset_dir
    from tunelab.runs.rundir import atomic_write_text

    if str(dataset_dir) == "builtin":
        raise ConfigError(
            "dataset_dir=builtin is tunelab's bundled data, part of the installed package",
            "set dataset_dir to a folder of your own (e.g. data) to add datasets there",
        )
    if not _NAME.match(name or ""):
        raise ConfigError(
            f"dataset name {name!r} is not usable",
            "use letters, digits, '_', '-' or '.', starting with a letter or digit",
        )
    check = check_upload(upload)
    folder = resolve_dataset_dir(dataset_dir)
    registry = folder / _REGISTRY
    info: dict[str, Any] = {}
    if registry.is_file():
        load_registry(folder)  # a broken registry is reported with its line, not overwritten
        info = json.loads(registry.read_text(encoding="utf-8"))
    target = folder / f"{name}{check.path.suffix.lower()}"
    if not overwrite and (name in info or target.exists()):
        what = f"dataset '{name}' is already registered in {registry}" if name in info else f"{target} exists"
        raise DataError(what, "tick the replace box to overwrite it, or choose another name")
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(check.path, target)
    info[name] = {"file_name": target.name, **check.entry}
    atomic_write_text(registry, json.dumps(info, indent=2, ensure_ascii=False) + "\n")
    return target, check


# ---- paging ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordPage:
    """One page of a dataset's raw records; ``start`` is the index of the first (from 0)."""

    dataset: str
    records: list[dict[str, Any]]
    start: int
    total: int
    page: int
    n_pages: int


@lru_cache(maxsize=4)
def _rows(path: str, stamp: tuple[tuple[int, int], ...]) -> list[dict[str, Any]]:
    """Rows of a file or folder, cached while its files keep their size and mtime (``stamp``)."""
    from tunelab.data.files import read_rows

    return read_rows(Path(path))


def read_page(dataset: str, dataset_dir: str | Path, page: int, page_size: int = PAGE_SIZE) -> RecordPage:
    """Records ``page * page_size`` onwards of ``dataset`` as stored (before any format conversion)."""
    from tunelab.data.files import data_files
    from tunelab.data.registry import get_dataset_attr

    attr = get_dataset_attr(dataset, dataset_dir)  # hub-only or missing files: a DataError saying so
    assert attr.path is not None
    stamp = tuple((f.stat().st_size, f.stat().st_mtime_ns) for f in data_files(attr.path))
    rows = _rows(str(attr.path), stamp)
    n_pages = max(1, -(-len(rows) // page_size))
    page = min(max(page, 0), n_pages - 1)
    start = page * page_size
    return RecordPage(dataset, rows[start : start + page_size], start, len(rows), page, n_pages)


def page_html(ctx: UIContext, lang: str, dataset: str | None, dataset_dir: str, page: int) -> tuple[str, int]:
    """(html of the records, the page shown) for the browser; errors are shown in place."""
    if not dataset:
        return message_html(tr("records.none", lang)), 0
    try:
        if dataset_dir and dataset_dir != "builtin":
            ctx.guard.check(dataset_dir, "dataset_dir")
        shown = read_page(dataset, dataset_dir or "builtin", int(page or 0))
    except TunelabError as exc:
        return _error(tr("records.unreadable", lang, dataset=dataset), exc, lang), 0
    last = shown.start + len(shown.records)
    head = tr(
        "records.position",
        lang,
        first=shown.start + 1 if shown.records else 0,
        last=last,
        total=shown.total,
        page=shown.page + 1,
        pages=shown.n_pages,
    )
    items = "".join(
        f"<div class='tl-record' data-index='{i}'><div class='tl-record-head'>"
        f"{html.escape(tr('records.record', lang, index=i + 1))}</div>"
        f"<pre>{html.escape(json.dumps(row, ensure_ascii=False, indent=2, default=str))}</pre></div>"
        for i, row in enumerate(shown.records, start=shown.start)
    )
    return (
        f"<div class='tl-records' data-total='{shown.total}' data-start='{shown.start}'>"
        f"<div class='tl-records-head'><b>{html.escape(head)}</b></div>{items}</div>",
        shown.page,
    )


# ---- handlers -------------------------------------------------------------------------------------


def _error(lead: str, exc: TunelabError, lang: str) -> str:
    detail = exc.message + (f"\n{tr('hint', lang)}: {exc.hint}" if exc.hint else "")
    return message_html(f"{lead}\n{detail}", "error")


def upload_checked(lang: str, upload: str | None) -> tuple[str, str]:
    """(status html, suggested dataset name) once a file is chosen."""
    if not upload:
        return "", ""
    path = Path(upload)
    try:
        check = check_upload(path)
    except TunelabError as exc:
        return _error(tr("upload.invalid", lang, file=path.name), exc, lang), ""
    text = tr(
        "upload.checked",
        lang,
        file=path.name,
        n=check.n_records,
        formatting=check.formatting,
        kind=check.kind,
        columns=", ".join(check.columns),
    )
    suggested = re.sub(r"[^A-Za-z0-9_.\-]+", "_", path.stem).strip("._-") or "uploaded"
    return message_html(text, "ok"), suggested


def upload_saved(
    ctx: UIContext, lang: str, upload: str | None, dataset_dir: str, name: str, overwrite: bool
) -> tuple[str, str | None]:
    """(status html, the registered name or None) for the save button."""
    if not upload:
        return message_html(tr("upload.no_file", lang), "warn"), None
    file_name = Path(upload).name
    try:
        if dataset_dir and dataset_dir != "builtin":
            ctx.guard.check(dataset_dir, "dataset_dir")
        target, _ = save_upload(upload, dataset_dir or "builtin", (name or "").strip(), overwrite=overwrite)
    except TunelabError as exc:
        return _error(tr("upload.not_saved", lang, file=file_name), exc, lang), None
    registry = target.parent / _REGISTRY
    text = tr("upload.saved", lang, path=str(target), name=name.strip(), registry=str(registry))
    return message_html(text, "ok"), name.strip()


# ---- layout and wiring ---------------------------------------------------------------------------


def build_dataset_view(ctx: UIContext) -> dict[str, Any]:
    """The upload + record browser panel (inside the current Blocks), wired to the form's data fields."""
    import gradio as gr

    from tunelab.webui.tabs.train import dataset_choices

    lang, t = ctx.default_lang, ctx.translator
    dataset_dir, datasets = ctx.fields["dataset_dir"], ctx.fields["dataset"]
    w: dict[str, Any] = {}
    with gr.Accordion(tr("acc.dataset_view", lang), open=False, elem_id="tl-dataset-view") as acc:
        t.label(acc, "acc.dataset_view")
        with gr.Row():
            w["file"] = t.label(
                gr.File(
                    label=tr("lbl.upload_file", lang),
                    file_types=list(UPLOAD_SUFFIXES),
                    type="filepath",
                    elem_id="tl-upload-file",
                    scale=2,
                ),
                "lbl.upload_file",
            )
            with gr.Column(scale=2):
                w["name"] = t.label(
                    gr.Textbox(label=tr("lbl.upload_name", lang), elem_id="tl-upload-name"),
                    "lbl.upload_name",
                )
                w["overwrite"] = t.label(
                    gr.Checkbox(label=tr("lbl.upload_overwrite", lang), elem_id="tl-upload-overwrite"),
                    "lbl.upload_overwrite",
                )
                w["save"] = t.value(
                    gr.Button(tr("btn.upload_save", lang), elem_id="tl-upload-save"), "btn.upload_save"
                )
        w["upload_status"] = gr.HTML("", elem_id="tl-upload-status")
        with gr.Row():
            w["browse"] = t.label(
                gr.Dropdown(
                    choices=dataset_choices(dataset_dir.value),
                    value=None,
                    label=tr("lbl.browse_dataset", lang),
                    elem_id="tl-browse-dataset",
                    scale=3,
                ),
                "lbl.browse_dataset",
            )
            w["prev"] = t.value(
                gr.Button(tr("btn.prev_page", lang), elem_id="tl-records-prev", scale=0, min_width=110),
                "btn.prev_page",
            )
            w["next"] = t.value(
                gr.Button(tr("btn.next_page", lang), elem_id="tl-records-next", scale=0, min_width=110),
                "btn.next_page",
            )
        w["records"] = gr.HTML("", elem_id="tl-records")
        w["page"] = gr.State(0)

    def show(lang: str, dataset: str | None, folder: str, page: int) -> list[Any]:
        return list(page_html(ctx, lang, dataset, folder, page))

    view_in = [ctx.lang, w["browse"], dataset_dir]
    w["browse"].change(lambda lang, d, f: show(lang, d, f, 0), view_in, [w["records"], w["page"]])
    w["prev"].click(
        lambda lang, d, f, p: show(lang, d, f, p - 1), [*view_in, w["page"]], [w["records"], w["page"]]
    )
    w["next"].click(
        lambda lang, d, f, p: show(lang, d, f, p + 1), [*view_in, w["page"]], [w["records"], w["page"]]
    )
    dataset_dir.change(
        lambda folder: gr.update(choices=dataset_choices(folder), value=None), dataset_dir, w["browse"]
    )
    w["file"].upload(upload_checked, [ctx.lang, w["file"]], [w["upload_status"], w["name"]])

    def on_save(
        lang: str, upload: str | None, folder: str, name: str, overwrite: bool, chosen: Any
    ) -> list[Any]:
        status, saved = upload_saved(ctx, lang, upload, folder, name, overwrite)
        if saved is None:
            return [status, gr.update(), gr.update()]
        choices = dataset_choices(folder)
        return [status, gr.update(choices=choices, value=saved), gr.update(choices=choices, value=chosen)]

    w["save"].click(
        on_save,
        [ctx.lang, w["file"], dataset_dir, w["name"], w["overwrite"], datasets],
        [w["upload_status"], w["browse"], datasets],
    )
    return w
