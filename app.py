"""Serve the NSNet saliency explorer: ``python app.py [--host H] [--port P] [--checkpoint DIR] ...``.

Also the Hugging Face Spaces entry point (``app_file: app.py``). Every flag and environment
variable is in ``app/server/settings.py``; the page is ``app.shell``. Nothing is fetched from a
hub unless a hub id is asked for explicitly (``--checkpoint user/name`` or the UI box with ``--allow-hub``).
"""
import sys

from app.server.runtime import configure_environment

if __name__ == "__main__":
    configure_environment()  # before Gradio loads huggingface_hub, which reads its telemetry variable once
    from app.shell import main

    sys.exit(main())
