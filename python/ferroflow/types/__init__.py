"""Helper types shared by the public API (failures, notifiers, ordered sets)."""
