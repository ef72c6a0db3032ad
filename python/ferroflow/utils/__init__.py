"""Helpers shared by ferroflow's modules (TaskFlow's ``taskflow.utils``)."""
