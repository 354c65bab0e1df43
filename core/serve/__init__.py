"""``lookalike serve``: the engine as a small, read-only HTTP service (FastAPI + uvicorn, the ``serve``
extra).

``service`` answers the questions (no HTTP), ``app`` is the HTTP face, ``roots`` names and confines paths,
``server`` starts it from the command line, ``bench`` load-tests a real server. Import the submodules; this
package imports nothing, so the engine never needs the extra.
"""
