"""Capture tensors and attention from the debugger, inside the user's process.

The IDE evaluates `__import__("finetune_studio.debug").debug.capture(<expr>, name="<expr>")` while the
program is paused: `capture` summarises the object, builds the views (`docs/tensors.md` describes the
payload), finds the Fine-Tune Studio server (by the rule of `discovery.py`), posts to `/api/tensors` and
returns a short JSON string `{"id", "url", "summary"}` for the debugger's value display.

`capture` never raises into the user's program: any failure (no server, an object it cannot read) comes
back as `"reason"` in the result. This is the one place where the project catches broad exceptions.
Importing this module is cheap (standard library only); torch is imported on the first capture.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from .discovery import find_server

PREVIEW = 1 << 20  # elements of the (pooled) whole-tensor preview the dashboard slices from
SLICE_SIDE = 512  # default slice of a pooled N-D tensor, at up to this resolution
TIMEOUT = 5.0  # seconds for the POST; the server is local


def build_payload(obj: Any, name: str, tokens: Any = None, tokenizer: Any = None,
                  input_ids: Any = None) -> dict[str, Any]:
    """The body of `POST /api/tensors` for `obj` (see docs/tensors.md)."""
    from .arrays import encode_array
    from .attention import attention_views, find_attention
    from .tensors import summarize

    layers = find_attention(obj)
    if layers is not None:
        views = attention_views(layers, tokens=tokens, tokenizer=tokenizer, input_ids=input_ids)
        arrays = {"heads": encode_array(views.heads_matrix), "head_average": encode_array(views.head_average)}
        if views.rollout is not None:
            arrays["rollout"] = encode_array(views.rollout)
        view = {"layers": views.layers, "heads": views.heads, "batch": views.batch,
                "batch_index": views.batch_index, "q_len": views.q_len, "k_len": views.k_len,
                "group": views.group, "query_labels": views.query_labels, "key_labels": views.key_labels,
                "note": views.note}
        return {"name": name, "kind": "attention", "summary": summarize(layers).to_dict(), "view": view,
                "arrays": arrays}
    summary = summarize(obj)
    return {"name": name, "kind": "tensor", "summary": summary.to_dict(), **_tensor_views(obj, summary)}


def _tensor_views(obj: Any, summary: Any) -> dict[str, Any]:
    import torch

    from .arrays import encode_array
    from .pooling import downsample, factors_for, pool
    from .tensors import as_tensors, slice2d

    parts, shape, _ = as_tensors(obj)
    if summary.nan is None or summary.numel == 0:  # meta or empty: nothing to draw
        return {"view": {"preview_shape": None, "pool": None, "slice": None}, "arrays": {}}
    inner = shape[1:] if len(parts) > 1 else shape
    factors = factors_for(inner, max(1, PREVIEW // len(parts)))
    pooled = [pool(p, factors, "mean").cpu() for p in parts]
    preview = torch.stack(pooled) if len(parts) > 1 else pooled[0]
    full_factors = [1, *factors] if len(parts) > 1 else factors
    arrays = {"preview": encode_array(preview)}
    slice_view = None
    if len(shape) >= 3 and any(f > 1 for f in full_factors):
        # the pooled preview blurs the last two dimensions: send the first matrix at full resolution
        matrix = slice2d(parts[0], (-2, -1), [0] * (parts[0].dim() - 2))
        small, slice_factors = downsample(matrix, SLICE_SIDE, SLICE_SIDE)
        arrays["slice"] = encode_array(small)
        slice_view = {"dims": [len(shape) - 2, len(shape) - 1], "index": [0] * (len(shape) - 2),
                      "pool": slice_factors}
    view = {"preview_shape": list(preview.shape), "pool": full_factors, "slice": slice_view}
    return {"view": view, "arrays": arrays}


def post(url: str, token: str, payload: dict[str, Any]) -> dict[str, Any]:
    """POST the payload to `url/api/tensors` with the standard library only (the user's environment may
    lack httpx); proxies are bypassed because the server is local."""
    body = json.dumps(payload, allow_nan=False).encode("utf-8")
    request = urllib.request.Request(
        f"{url}/api/tensors", data=body, method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=TIMEOUT) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def _reason(error: BaseException, url: str | None) -> str:
    if isinstance(error, urllib.error.HTTPError):
        detail = error.read().decode("utf-8", "replace")[:300]
        return f"the server at {url} answered {error.code}: {detail}"
    if isinstance(error, urllib.error.URLError):
        return f"no answer from the server at {url}: {error.reason} (is `finetune-studio serve` running?)"
    if isinstance(error, LookupError):
        return str(error)
    return f"{type(error).__name__}: {error}"


def capture(obj: Any, name: str | None = None, tokens: Any = None, tokenizer: Any = None,
            input_ids: Any = None) -> str:
    """Summarise `obj` (a tensor, ndarray, nested list, attention tuple or model output with
    `.attentions`), send it to the server and return `{"id", "url", "summary"}` as JSON; with no server
    (or any failure) `{"id": null, "url": null, "summary", "reason"}`. Never raises."""
    text: str | None = None
    url: str | None = None
    try:
        payload = build_payload(obj, name or "capture", tokens, tokenizer, input_ids)
        text = payload["summary"]["text"]
        server = find_server()
        url = server.url
        answer = post(url, server.token, payload)
        return json.dumps({"id": answer["id"], "url": f"{url}/#tensor={answer['id']}", "summary": text})
    except Exception as error:  # the documented exception: never break the user's paused program
        return json.dumps({"id": None, "url": None, "summary": text, "reason": _reason(error, url)})


def attention(model: Any, tokenizer: Any, text: str, name: str | None = None) -> str:
    """Run `model` once on `text` with output_attentions=True and capture the attention with the tokens
    as labels. Gradient-free; the model's train/eval mode and attention implementation are restored
    (SDPA and flash kernels return no weights, so the model runs eagerly for this one pass)."""
    import torch

    device = next(model.parameters()).device
    encoded = tokenizer(text, return_tensors="pt")
    encoded = {key: value.to(device) for key, value in encoded.items()}
    was_training = model.training
    implementation = model.config._attn_implementation
    try:
        model.eval()
        if implementation != "eager":
            model.set_attn_implementation("eager")
        with torch.no_grad():
            outputs = model(**encoded, output_attentions=True)
    finally:
        if implementation != "eager":
            model.set_attn_implementation(implementation)
        model.train(was_training)
    attentions = getattr(outputs, "attentions", None)
    if not attentions or any(a is None for a in attentions):
        return json.dumps({"id": None, "url": None, "summary": None, "reason": (
            f"{type(model).__name__} returned no attention weights with output_attentions=True "
            f"(attn_implementation {implementation!r} could not be switched to 'eager' for this pass)")})
    tokens = tokenizer.convert_ids_to_tokens(encoded["input_ids"][0].tolist())
    label = name or f"attention: {text[:40]}{'…' if len(text) > 40 else ''}"
    return capture(outputs, name=label, tokens=tokens)

