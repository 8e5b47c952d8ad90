"""The web pages: Home, Technical Details, Demo, About, and the API docs.

Served by the BentoML service (mounted Starlette routes) and renderable to static HTML:

    python -m web.pages --out site/

Every number on Technical Details comes from the served model's own metadata and, if a
benchmark has been run, from `loadtests/results/benchmark.json`, `live_benchmark.json` and
`gpu_benchmark.json`;
nothing is hard-coded.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ser.config import EVALUATION_VIEWS, LABELS
from ser.errors import InputError
from ser.inference import REPO_ROOT, EmotionModel, ModelInfo, metadata_json, normalisation_text
from ser.segments import SEGMENTATIONS
from serving.errors import error_response
from serving.live import LIVE_PROTOCOL

WEB = Path(__file__).resolve().parent
BENCHMARK_JSON = REPO_ROOT / "loadtests" / "results" / "benchmark.json"
LIVE_BENCHMARK_JSON = BENCHMARK_JSON.with_name("live_benchmark.json")
GPU_BENCHMARK_JSON = BENCHMARK_JSON.with_name("gpu_benchmark.json")
PAGES = {  # route -> (template, title in the navigation bar)
    "/": ("home.html", "Home"),
    "/technical": ("technical.html", "Technical Details"),
    "/demo": ("demo.html", "Demo"),
    "/about": ("about.html", "About"),
}
MODEL_FILES = {"confusion_matrix.png", "training_curves.png", "MODEL_CARD.md"}


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(loader=FileSystemLoader(WEB / "templates"), autoescape=select_autoescape(["html"]))
    env.filters["pct"] = lambda x: f"{100 * float(x):.1f}"
    return env


def page_context(info: ModelInfo, model_dir: Path, benchmark_path: Path = BENCHMARK_JSON) -> dict[str, Any]:
    """What the templates show, all read from the model's metadata and result files."""
    evaluation = metadata_json(info, "evaluation") or {}
    benchmark = json.loads(benchmark_path.read_text()) if benchmark_path.exists() else None
    live_path = benchmark_path.with_name(LIVE_BENCHMARK_JSON.name)
    live_benchmark = json.loads(live_path.read_text()) if live_path.exists() else None
    gpu_path = benchmark_path.with_name(GPU_BENCHMARK_JSON.name)
    gpu_benchmark = json.loads(gpu_path.read_text()) if gpu_path.exists() else None
    return {
        "labels": LABELS,
        "model": {
            "name": info.name,
            "version": info.version,
            "created": info.metadata.get("created"),
            "license": info.metadata.get("license"),
            "weights": info.metadata.get("weights", "float32"),
        },  # fmt: skip
        "features": json.loads(info.feature_config.to_json()),
        "architecture": metadata_json(info, "architecture") or {},
        "teacher": metadata_json(info, "teacher"),
        "normalisation": normalisation_text(metadata_json(info, "normalisation") or {}),
        "temperature": metadata_json(info, "temperature"),
        "train_config": metadata_json(info, "train_config") or {},
        "training_data": metadata_json(info, "training_data") or {},
        "validation": metadata_json(info, "validation_metrics") or {},
        "cv": evaluation.get("speaker_cv"),
        "differences": evaluation.get("recipe_differences") or {},
        "random_split": evaluation.get("random_split"),
        "cross_corpus": evaluation.get("cross_corpus"),
        "loco": evaluation.get("leave_one_corpus_out") or {},
        "view_names": EVALUATION_VIEWS,
        "has_confusion": (model_dir / "confusion_matrix.png").exists(),
        "has_card": (model_dir / "MODEL_CARD.md").exists(),
        "benchmark": benchmark,
        "live_benchmark": live_benchmark,
        "gpu_benchmark": gpu_benchmark,
        "uncertainty_threshold": info.uncertainty_threshold,
    }


def render(path: str, context: dict[str, Any], static_links: bool = False) -> str:
    template, title = PAGES[path]
    nav = [(route, name) for route, (_, name) in PAGES.items()]
    if static_links:  # files on disk link to each other as .html
        nav = [("index.html" if r == "/" else r.strip("/") + ".html", n) for r, n in nav]
    root = "" if static_links else "/"  # static files use relative links
    api = "http://localhost:3000" if static_links else ""
    return (
        environment()
        .get_template(template)
        .render(title=title, nav=nav, current=title, static=static_links, root=root, api=api, **context)
    )


def openapi_document(base: dict[str, Any]) -> dict[str, Any]:
    """BentoML's generated spec (typed `predict` included), plus what a schema can't say:
    the raw-body alternative to the multipart upload and the one error shape."""
    doc = json.loads(json.dumps(base))
    # BentoML's description embeds badge images from img.shields.io: pages must work offline
    doc["info"] = {**doc.get("info", {}), "title": "Speech emotion recognition",
                   "description": "Upload speech to `/predict`; see the Technical Details page for the model.\n\n"
                                  + LIVE_PROTOCOL}  # fmt: skip
    error = {"$ref": "#/components/schemas/Error"}
    doc.setdefault("components", {}).setdefault("schemas", {})["Error"] = {
        "type": "object", "required": ["error"],
        "properties": {"error": {"type": "object", "required": ["code", "message"],
                                 "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}},
    }  # fmt: skip
    post = doc.get("paths", {}).get("/predict", {}).get("post")
    if post is None:
        return doc
    raw = {"schema": {"type": "string", "format": "binary"}}
    post["requestBody"]["content"] |= {"audio/*": raw, "application/octet-stream": raw}
    post["parameters"] = [{"name": "top_k", "in": "query", "required": False,
                           "description": "with a raw body: how many of the likeliest emotions to list",
                           "schema": {"type": "integer", "minimum": 1, "maximum": len(LABELS), "default": 3}},
                          {"name": "segmentation", "in": "query", "required": False,
                           "description": "with a raw body: recordings longer than 4 s split into utterances where "
                                          "the speech is ('speech') or into 4 s windows every 2 s ('fixed')",
                           "schema": {"type": "string", "enum": list(SEGMENTATIONS), "default": "speech"}}]  # fmt: skip
    post["responses"] |= {
        str(code): {"description": text, "content": {"application/json": {"schema": error}}}
        for code, text in [(400, "bad request: no file, empty, corrupt, malformed form, bad parameter"),
                           (405, "not POST"), (408, "the upload did not arrive in time"),
                           (413, "upload or audio too large, too long or too costly to decode"),
                           (415, "not a supported body type or audio format"),
                           (422, "audio too short, silent, or with NaN/infinite samples"),
                           (429, "too many concurrent requests"), (503, "busy, retry")]
    }  # fmt: skip
    return doc


DOCS_HTML = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>API docs: speech emotion recognition</title>
<link rel="stylesheet" href="/static_content/swagger-ui.css">
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml"></head>
<body><div id="swagger-ui"></div>
<script src="/static_content/swagger-ui-bundle.js"></script>
<script src="/static/docs.js"></script></body></html>"""


def routes(
    get_model: Callable[[], EmotionModel], get_model_dir: Callable[[], Path], get_openapi: Callable[[], dict]
) -> list:
    """Starlette routes for the pages; getters resolve the served model lazily."""

    def page(path: str):
        async def endpoint(request: Request) -> Response:
            return HTMLResponse(render(path, page_context(get_model().info, get_model_dir())))

        return endpoint

    async def model_file(request: Request) -> Response:
        name = request.path_params["name"]
        path = get_model_dir() / name
        if name not in MODEL_FILES or not path.exists():
            return error_response(InputError("not_found", f"no model file {name!r}", 404))
        if name.endswith(".md"):
            return PlainTextResponse(path.read_text(), media_type="text/markdown; charset=utf-8")
        return FileResponse(path)

    async def model_info(request: Request) -> Response:
        model = get_model()
        info = model.info
        return JSONResponse({"name": info.name, "version": info.version, "labels": list(info.labels),
                             "uncertainty_threshold": info.uncertainty_threshold, "provider": model.provider,
                             "weights": model.weights,
                             "feature_config": json.loads(info.feature_config.to_json())})  # fmt: skip

    async def openapi(request: Request) -> Response:
        return JSONResponse(openapi_document(get_openapi()))

    async def docs(request: Request) -> Response:
        return HTMLResponse(DOCS_HTML)

    return [
        *[Route(path, page(path), methods=["GET"]) for path in PAGES],
        Route("/model", model_info, methods=["GET"]),
        Route("/model/{name}", model_file, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/docs", docs, methods=["GET"]),
        Mount("/static", StaticFiles(directory=WEB / "static"), name="static"),
    ]


def render_site(out: Path, model_path: Path) -> list[Path]:
    """Write the four pages as static HTML (with the model's images and the stylesheet)."""
    import shutil

    from ser.inference import read_model_info

    info = read_model_info(model_path)
    context = page_context(info, model_path.parent)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in PAGES:
        name = "index.html" if path == "/" else path.strip("/") + ".html"
        (out / name).write_text(render(path, context, static_links=True))
        written.append(out / name)
    shutil.copytree(WEB / "static", out / "static", dirs_exist_ok=True)
    (out / "model").mkdir(exist_ok=True)
    for name in MODEL_FILES:
        if (model_path.parent / name).exists():
            shutil.copyfile(model_path.parent / name, out / "model" / name)
    return written


def main(argv: list[str] | None = None) -> None:
    from ser.inference import BUNDLED_MODEL

    p = argparse.ArgumentParser(description="Render the web pages to static HTML files.")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--model", type=Path, default=BUNDLED_MODEL)
    args = p.parse_args(argv)
    for path in render_site(args.out, args.model):
        print(path)


if __name__ == "__main__":
    main()
