"""The rooms of the page, one module each (layout, events, callbacks): ``analyze``, ``compare``,
``dataset``; and what they share: ``request``, ``base``, ``errors``."""
