"""The ports (DESIGN §10): the interfaces of the stores and the records they keep."""
