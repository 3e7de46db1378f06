"""The ``partnerctl`` command line (DESIGN §11): each command builds its objects, calls the library, prints.

``main.py`` is the entry point and the error handling; ``wiring.py`` is the one place the adapters
(backends, the HTTP sender, the upstream forwarder) are handed to the core; the other modules are
the command groups. Commands are loaded when they are called, so ``--help`` and ``validate`` start fast.
"""

__all__: list[str] = []  # reached through the console script, reconciler.cli.main:main
