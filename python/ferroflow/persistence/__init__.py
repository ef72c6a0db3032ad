"""Persistence: the models (LogBook, FlowDetail, AtomDetail), the Backend/Connection interface and
the backends (``ferroflow.persistence.backends.fetch('memory://')``)."""
