"""A dataset video handed to the page: its copy in Gradio's own cache (``serve_copy``), never a dataset folder."""
import os
from typing import Optional

__all__ = ["serve_copy"]


def serve_copy(path, copies: Optional[dict] = None) -> str:
    """A checked dataset video, as a file Gradio may hand out: its copy in Gradio's own cache (made once per
    content, aged out with the cache). No dataset folder is ever added to Gradio's allowed paths, so the
    ``/file=`` route serves these copies and nothing else of the dataset. ``copies`` remembers the copy of
    each video (by its size and modification time) so a second open does not hash the file again."""
    from gradio import processing_utils
    from gradio import utils as gr_utils

    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    known = copies.get(key) if copies is not None else None
    if known is not None and os.path.isfile(known):
        try:
            os.utime(known)   # Gradio's delete_cache ages files by time: a copy handed out again is young again
            return known
        except OSError:
            pass
    copy = processing_utils.save_file_to_cache(path, gr_utils.get_upload_folder())
    if copies is not None:
        copies[key] = copy
    return copy
