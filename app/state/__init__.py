"""What the rooms read: ``context`` (shared, read-only, built once), ``models``, ``examples``, ``dataset``
and ``rows`` (its pieces), and ``session`` (per visitor, held in ``gr.State``). Never imports the rooms."""
