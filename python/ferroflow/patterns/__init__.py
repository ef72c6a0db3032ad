"""Flow patterns: :mod:`.linear_flow`, :mod:`.unordered_flow` and :mod:`.graph_flow`."""
