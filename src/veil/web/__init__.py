"""``veil serve``: a local review page over the same pipeline as the CLI.

`create_app` (in `veil.web.app`) needs the ``web`` extra: ``pip install '.[web]'`` in veil's folder.
"""
