"""Listeners: objects that attach to an engine's notifiers and react to state transitions."""
