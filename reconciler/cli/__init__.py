"""The ``partnerctl`` command line: each command builds its objects, calls the library, prints."""
