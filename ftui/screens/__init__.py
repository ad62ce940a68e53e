"""One screen per file; modals are `<name>_modal.py`."""
