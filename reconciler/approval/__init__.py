"""Approval (DESIGN §4): which version of each manifest file is approved to be live."""
