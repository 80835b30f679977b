#!/usr/bin/python3
"""The Pillow peer in `make bench`: what a careful Python team would run
instead of renderfarm's engine, on the same files and the same variants.

    /usr/bin/python3 tools/bench/pillow_peer.py --out DIR --procs N \
        (--variant JSON ... | --recipe NAME [--recipes render/recipes.yaml]) FILES...

Variants are renderfarm's own JSON (key, width, height, format, quality,
effort) or a recipe from render/recipes.yaml, so both sides read the same
definitions; only fit "inside" (the bench's variants and the gallery recipe)
is implemented. Outputs are named as `renderfarm render` names them:
OUT/<source stem>_<key>.<ext>. Prints one JSON line: outputs and bytes.

How it is careful:
- draft(): libjpeg's DCT scaling, the largest that still covers the largest
  variant, so the decode does as little work as renderfarm's shrink-on-load;
- the source is decoded once, and each variant is resized from the smallest
  one already made that covers it (1600 -> 800 -> 200 -> 64), as the engine
  cascades;
- resize() with LANCZOS and reducing_gap=2.0, which is what thumbnail() does;
- EXIF orientation applied, sizes rounded as the engine rounds them;
- one process per core (multiprocessing.Pool), files handed out one at a
  time so a slow file does not hold back a batch;
- the engine's encoder settings: JPEG baseline with optimised Huffman tables
  (optimize=True), 4:2:0, no metadata; WebP lossy at the same quality and
  method (renderfarm's effort), no metadata.

tools/bench/celery_peer.py imports render_image for the end-to-end peer.
"""

import argparse
import io
import json
import multiprocessing
import os
import sys

from PIL import Image, ImageOps

DEFAULT_QUALITY = {"jpeg": 80, "webp": 80}  # render/request.go's defaults
DEFAULT_EFFORT = 4                           # webp effort (method)
EXT = {"jpeg": "jpg", "webp": "webp"}
ORIENTATION = 0x0112


def plan(v, sw, sh):
    """The engine's planVariant for fit inside: scale to fit the box, never
    enlarge, round half away from zero (Go's math.Round)."""
    scale = float("inf")
    if v.get("width"):
        scale = v["width"] / sw
    if v.get("height"):
        scale = min(scale, v["height"] / sh)
    if scale > 1 and not v.get("enlarge"):
        scale = 1
    return max(int(sw * scale + 0.5), 1), max(int(sh * scale + 0.5), 1)


def render_image(src, variants):
    """Renders every variant from one source (a path or a file object) and
    returns, in the order given, (variant, width, height, encoded bytes)."""
    im = Image.open(src)
    orientation = im.getexif().get(ORIENTATION, 1)
    sw, sh = im.size
    swap = orientation in (5, 6, 7, 8)
    if swap:
        sw, sh = sh, sw
    sizes = [plan(v, sw, sh) for v in variants]
    need_w = max(w for w, _ in sizes)
    need_h = max(h for _, h in sizes)
    if swap:
        need_w, need_h = need_h, need_w
    im.draft("RGB", (need_w, need_h))
    if im.mode != "RGB":
        im = im.convert("RGB")
    im.load()
    if orientation != 1:
        im = ImageOps.exif_transpose(im)
    made = [im]
    results = [None] * len(variants)
    for i in sorted(range(len(variants)), key=lambda i: -sizes[i][0] * sizes[i][1]):
        v, (w, h) = variants[i], sizes[i]
        src = min((m for m in made if m.width >= w and m.height >= h),
                  key=lambda m: m.width * m.height)
        img = src if src.size == (w, h) else src.resize((w, h), Image.LANCZOS, reducing_gap=2.0)
        made.append(img)
        fmt = v.get("format", "jpeg")
        q = v.get("quality") or DEFAULT_QUALITY[fmt]
        buf = io.BytesIO()
        if fmt == "jpeg":
            img.save(buf, "JPEG", quality=q, optimize=True)
        else:
            img.save(buf, "WEBP", quality=q, method=v.get("effort", DEFAULT_EFFORT))
        results[i] = (v, w, h, buf.getvalue())
    return results


def render_file(job):
    path, out, variants = job
    stem = os.path.splitext(os.path.basename(path))[0]
    written = []
    for v, _, _, data in render_image(path, variants):
        with open(os.path.join(out, "%s_%s.%s" % (stem, v["key"], EXT[v.get("format", "jpeg")])), "wb") as f:
            f.write(data)
        written.append(len(data))
    return written


def recipe_variants(path, name):
    """A recipe from render/recipes.yaml as variants keyed by their names."""
    import yaml  # only for recipes

    with open(path) as f:
        recipe = yaml.safe_load(f)["recipes"][name]
    vs = []
    for r in recipe:
        v = {k: r[k] for k in ("width", "height", "format", "quality", "effort", "enlarge", "fit") if k in r}
        v["key"] = str(r["name"])
        vs.append(v)
    return vs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--procs", type=int, default=os.cpu_count())
    ap.add_argument("--variant", action="append", default=[])
    ap.add_argument("--recipe")
    ap.add_argument("--recipes", default=os.path.join(os.path.dirname(__file__), "../../render/recipes.yaml"))
    ap.add_argument("files", nargs="+")
    a = ap.parse_args()
    variants = [json.loads(v) for v in a.variant]
    if a.recipe:
        variants += recipe_variants(a.recipes, a.recipe)
    if not variants:
        sys.exit("pillow_peer: no variants")
    for v in variants:
        if v.get("fit", "inside") != "inside" or v.get("format", "jpeg") not in EXT:
            sys.exit("pillow_peer: unsupported variant %r" % v)
    os.makedirs(a.out, exist_ok=True)
    with multiprocessing.Pool(a.procs) as pool:
        sizes = [n for ns in pool.imap_unordered(render_file, [(f, a.out, variants) for f in a.files]) for n in ns]
        pool.close()
        pool.join()
    print(json.dumps({"outputs": len(sizes), "bytes": sum(sizes)}))


if __name__ == "__main__":
    main()
