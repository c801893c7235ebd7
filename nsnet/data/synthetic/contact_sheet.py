"""Contact sheet: a grid of a few videos' preview frames with labels and saliency marks.

Rows are videos (class name and id on the left), columns are ``T`` TSN-style previews
(the middle frame of each of ``T`` equal segments). A green frame border marks a salient
frame (inside a ground-truth segment), red a non-salient one; the caption under each
tile names the scene kind (``near_miss/panel``, ``title``, ...). Frames are rendered
directly from specs, so no video needs to be decoded.
"""
from __future__ import annotations

import os
from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont

from .render import Renderer
from .spec import VideoSpec

__all__ = ["make_contact_sheet", "preview_indices"]


def preview_indices(num_frames: int, t: int) -> list[int]:
    """Frame indices of ``t`` TSN-style previews: the middle of each of ``t`` equal segments."""
    return [min(num_frames - 1, int((k + 0.5) * num_frames / t)) for k in range(t)]


def make_contact_sheet(
    specs: Sequence[VideoSpec],
    path: str | os.PathLike,
    frames_per_video: int = 8,
    tile_width: int = 160,
) -> Image.Image:
    """Draw the contact sheet of ``specs`` to ``path`` (PNG) and return the image."""
    if not specs:
        raise ValueError("no videos for the contact sheet")
    aspect = specs[0].height / specs[0].width
    tw, th = tile_width, int(round(tile_width * aspect))
    label_w, cap_h, border = 170, 16, 4
    cell_w, cell_h = tw + 2 * border + 4, th + 2 * border + cap_h
    sheet = Image.new("RGB", (label_w + cell_w * frames_per_video, 26 + cell_h * len(specs)), (255, 255, 255))
    d = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=12)
    bold = ImageFont.load_default(size=14)
    d.text((6, 6), "green border = salient (inside a ground-truth segment), red = non-salient; "
                   "caption = scene kind", font=font, fill=(0, 0, 0))
    for r, spec in enumerate(specs):
        y = 26 + r * cell_h
        d.text((6, y + th // 2 - 14), spec.class_name, font=bold, fill=(0, 0, 0))
        d.text((6, y + th // 2 + 4), f"{spec.video_id}  {spec.duration:.1f}s", font=font, fill=(90, 90, 90))
        rend = Renderer(spec)
        salient = spec.salient_frames()
        for c, i in enumerate(preview_indices(spec.num_frames, frames_per_video)):
            x = label_w + c * cell_w
            colour = (20, 170, 40) if salient[i] else (210, 30, 30)
            d.rectangle([x, y, x + tw + 2 * border - 1, y + th + 2 * border - 1], fill=colour)
            tile = Image.fromarray(rend.frame(i)).resize((tw, th), Image.BILINEAR)
            sheet.paste(tile, (x + border, y + border))
            sc = spec.scene_at(i)
            kind = sc.kind
            params = rend.scene_params(int(rend.scene_of_frame[i]))
            if kind == "near_miss":
                kind += "/" + params["variant"]
            fade = " fade" if (sc.fade_in and i - sc.start < sc.fade_in) or (sc.fade_out and sc.end - 1 - i < sc.fade_out) else ""
            d.text((x + 2, y + th + 2 * border), f"{i / spec.fps:.1f}s {kind}{fade}", font=font, fill=(0, 0, 0))
    sheet.save(os.fspath(path))
    return sheet
